// Installs and revenue over time with uPlot (vendored), schema-version boundaries drawn as
// dashed lines and the days still receiving postbacks shaded. The same numbers are one click
// away as a table, since a canvas says nothing to a screen reader.
import { html, useEffect, useRef } from '../vendor/htm-preact-standalone.js';
import { fmt } from './util.js';

const DAY = 86400;

function series(report) {
  const rows = report.rows.filter((r) => typeof r.group.day === 'string').sort((a, b) => (a.group.day < b.group.day ? -1 : 1));
  const byDay = new Map(rows.map((r) => [r.group.day, r]));
  const start = Date.parse(report.from + 'T00:00:00Z') / 1000;
  const end = Date.parse(report.to + 'T00:00:00Z') / 1000;
  const xs = [];
  const installs = [];
  const revenue = [];
  const revenueMin = [];
  const revenueMax = [];
  for (let t = start; t <= end; t += DAY) {
    const day = new Date(t * 1000).toISOString().slice(0, 10);
    const row = byDay.get(day);
    xs.push(t);
    installs.push(row ? row.installs : 0);
    revenue.push(row && row.revenue[0] ? row.revenue[0].mid : 0);
    revenueMin.push(row && row.revenue[0] ? row.revenue[0].min : 0);
    revenueMax.push(row && row.revenue[0] ? row.revenue[0].max : null);
  }
  return { xs, installs, revenue, revenueMin, revenueMax, rows, currency: rows.find((r) => r.revenue[0])?.revenue[0].currency || '' };
}

export function TimeChart({ report, versions, completeFrom, dateType }) {
  const box = useRef(null);
  const data = series(report);
  const boundaries = (versions || []).map((v) => ({ t: Math.floor(Date.parse(v.effective_from) / 1000 / DAY) * DAY, label: 'v' + v.version }))
    .filter((b) => b.t >= data.xs[0] && b.t <= data.xs[data.xs.length - 1]);
  const shadeFrom = completeFrom ? Date.parse(completeFrom + 'T00:00:00Z') / 1000 : null;
  useEffect(() => {
    if (!box.current || !window.uPlot) return undefined;
    const styles = getComputedStyle(document.documentElement);
    const ink = styles.getPropertyValue('--ink').trim() || '#222';
    const accent = styles.getPropertyValue('--accent').trim() || '#2457c5';
    const accent2 = styles.getPropertyValue('--accent-2').trim() || '#b4531a';
    const muted = styles.getPropertyValue('--muted').trim() || '#666';
    const width = Math.max(280, box.current.clientWidth);
    const plot = new window.uPlot({
      width,
      height: 240,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, rev: { auto: true } },
      axes: [
        { stroke: muted, grid: { stroke: 'rgba(128,128,128,0.15)' } },
        { stroke: muted, label: 'installs', grid: { stroke: 'rgba(128,128,128,0.15)' } },
        { side: 1, scale: 'rev', stroke: muted, label: 'revenue ' + data.currency, grid: { show: false } },
      ],
      series: [
        { value: (u, v) => (v === null ? '' : new Date(v * 1000).toISOString().slice(0, 10)) },
        { label: 'Installs', stroke: accent, width: 2, fill: 'rgba(36,87,197,0.08)' },
        { label: 'Revenue (mid)', scale: 'rev', stroke: accent2, width: 2, dash: [6, 3] },
        { label: 'Revenue min', scale: 'rev', stroke: accent2, width: 1, dash: [2, 3] },
        { label: 'Revenue max', scale: 'rev', stroke: accent2, width: 1, dash: [2, 3], spanGaps: false },
      ],
      hooks: {
        draw: [(u) => {
          const { ctx } = u;
          const top = u.bbox.top;
          const height = u.bbox.height;
          ctx.save();
          if (shadeFrom !== null && shadeFrom <= data.xs[data.xs.length - 1]) {
            const x0 = Math.max(u.bbox.left, u.valToPos(shadeFrom - DAY / 2, 'x', true));
            const x1 = u.bbox.left + u.bbox.width;
            ctx.fillStyle = 'rgba(128,128,128,0.18)';
            ctx.fillRect(x0, top, x1 - x0, height);
            ctx.strokeStyle = 'rgba(128,128,128,0.45)';
            ctx.lineWidth = 1;
            for (let x = x0 - height; x < x1; x += 8 * devicePixelRatio) {
              ctx.beginPath();
              ctx.moveTo(Math.max(x, x0), top + (Math.max(x, x0) - x));
              ctx.lineTo(Math.min(x + height, x1), top + (Math.min(x + height, x1) - x));
              ctx.stroke();
            }
            ctx.fillStyle = ink;
            ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
            ctx.fillText('still arriving', Math.min(x0 + 4, x1 - 70 * devicePixelRatio), top + 14 * devicePixelRatio);
          }
          ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.strokeStyle = ink;
          ctx.fillStyle = ink;
          for (const b of boundaries) {
            const x = u.valToPos(b.t - DAY / 2, 'x', true);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.fillText(b.label, x + 3, top + height - 6);
          }
          ctx.restore();
        }],
      },
    }, [data.xs, data.installs, data.revenue, data.revenueMin, data.revenueMax], box.current);
    const resize = () => plot.setSize({ width: Math.max(280, box.current.clientWidth), height: 240 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.destroy();
    };
  }, [report, versions, completeFrom]);
  const total = data.installs.reduce((a, b) => a + b, 0);
  const label = `Line chart: ${fmt.int(total)} installs from ${report.from} to ${report.to} by ${dateType} day` +
    (boundaries.length ? `; schema versions start at ${boundaries.map((b) => b.label + ' ' + new Date(b.t * 1000).toISOString().slice(0, 10)).join(', ')}` : '') +
    (shadeFrom ? `; days from ${completeFrom} are still receiving postbacks` : '');
  return html`<div class="chart" role="img" aria-label=${label} ref=${box}></div>
    <p class="legend-note">Dashed vertical lines: a schema version starts. Hatched: postbacks still arriving.</p>
    <details><summary>Chart data as a table</summary><div class="table-scroll"><table>
      <thead><tr><th scope="col">Day</th><th scope="col">Installs</th><th scope="col">Revenue (mid)</th><th scope="col">Revenue range</th></tr></thead>
      <tbody>${data.xs.map((t, i) => html`<tr><th scope="row">${new Date(t * 1000).toISOString().slice(0, 10)}</th><td>${fmt.int(data.installs[i])}</td><td>${fmt.money(data.revenue[i])}</td><td>${fmt.money(data.revenueMin[i])}–${fmt.money(data.revenueMax[i])}</td></tr>`)}</tbody>
    </table></div></details>`;
}
