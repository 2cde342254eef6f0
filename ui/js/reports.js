// Reports: the question "which networks and campaigns bring users worth paying for", with every
// parameter of GET /v1/reports in the URL so a link reopens the same view.
import { html, useEffect, useMemo, useState } from '../vendor/htm-preact-standalone.js';
import { api, query } from './api.js';
import { AppPicker, useApps } from './apps.js';
import { CopyButton, ErrorNote, daysAgo, download, fmt, isoDay, navigate } from './util.js';
import { HeatGrid } from './grid.js';
import { TimeChart } from './chart.js';

export const DIMENSIONS = [
  ['day', 'Day'], ['week', 'Week'], ['month', 'Month'], ['ad_network_id', 'Ad network'],
  ['source_identifier', 'Campaign (source identifier)'], ['window', 'Window'], ['fidelity', 'Fidelity'],
  ['version', 'Version'], ['event', 'Event'], ['fine_value', 'Fine value'], ['coarse_value', 'Coarse value'],
  ['tier', 'Tier'],
];
const FILTERS = [
  ['ad_network_id', 'Ad networks', 'comma-separated'],
  ['source_identifier', 'Source identifiers', 'comma-separated'],
  ['window', 'Windows', '0, 1, 2'],
  ['fidelity', 'Fidelity', 'click, view'],
  ['version', 'Versions', '4.0, adattributionkit…'],
];
const BOOLEAN_FILTERS = [['did_win', 'Winning'], ['redownload', 'Redownload'], ['development', 'Development']];
const QUERY_KEYS = ['app_id', 'from', 'to', 'date_type', 'group_by', 'digits', ...FILTERS.map((f) => f[0]), ...BOOLEAN_FILTERS.map((f) => f[0])];

/** Hours after the install by which each window's postbacks have all arrived (README). */
export const COMPLETE_AFTER_DAYS = [4, 13, 41];

/** The report's query, as the URL holds it. */
export function reportQuery(params) {
  const q = {};
  for (const key of QUERY_KEYS) {
    const value = params.get(key);
    if (value) q[key] = value;
  }
  return q;
}

function filtersOnly(q) {
  const rest = { ...q };
  delete rest.group_by;
  delete rest.digits;
  return rest;
}

export function curlCommand(q) {
  return `curl -s -H "Authorization: Bearer $SKAN_API_KEY" '${location.origin}/v1/reports?${query(q)}'`;
}

export function cliCommand(q) {
  const flag = (name) => '--' + name.replace(/_/g, '-');
  const parts = ['skan-receiver report', `--app ${q.app_id}`, `--from ${q.from}`, `--to ${q.to}`];
  for (const [key, value] of Object.entries(q)) {
    if (['app_id', 'from', 'to'].includes(key)) continue;
    parts.push(`${flag(key)} ${value}`);
  }
  return parts.join(' ');
}

function groupText(value) {
  if (value === null || value === undefined) return '(none)';
  return String(value);
}

const METRICS = [
  ['postbacks', 'Postbacks', (m) => m.postbacks],
  ['valid', 'Valid', (m) => m.valid],
  ['invalid', 'Invalid', (m) => m.invalid],
  ['installs', 'Installs', (m) => m.installs],
  ['redownloads', 'Redownloads', (m) => m.redownloads],
  ['nonwinning', 'Nonwinning', (m) => m.nonwinning],
  ['null_values', 'Null values', (m) => m.null_values],
  ['null_rate', 'Null rate', (m) => m.null_rate, fmt.pct],
  ['unsigned_mismatch', 'Mismatch', (m) => m.unsigned_mismatch],
  ['revenue_mid', 'Revenue (mid)', (m) => (m.revenue[0] ? m.revenue[0].mid : null), (x, m) => (x === null ? '–' : fmt.money(x, m.revenue[0] && m.revenue[0].currency))],
  ['revenue_range', 'Revenue range', (m) => (m.revenue[0] ? m.revenue[0].min : null), (x, m) => (m.revenue[0] ? `${fmt.money(m.revenue[0].min)}–${fmt.money(m.revenue[0].max)}` : '–')],
  ['revenue_modeled', 'Modeled revenue', (m) => (m.revenue[0] ? m.revenue[0].modeled : null), (x) => (x === null ? '–' : fmt.money(x))],
  ['events', 'Events', (m) => m.events.reduce((n, e) => n + e.postbacks, 0), (x, m) => m.events.map((e) => `${e.name} ${fmt.int(e.postbacks)}`).join(', ') || '–'],
];

function ReportForm({ q }) {
  const [form, setForm] = useState(q);
  useEffect(() => setForm(q), [JSON.stringify(q)]);
  const set = (key, value) => setForm({ ...form, [key]: value });
  const groups = (form.group_by || '').split(',').filter(Boolean);
  const toggleGroup = (dim) => set('group_by', (groups.includes(dim) ? groups.filter((g) => g !== dim) : [...groups, dim]).join(','));
  const submit = (event) => {
    event.preventDefault();
    navigate('reports', form);
  };
  return html`<form class="report-form" onSubmit=${submit} aria-label="Report query">
    <div class="row">
      <label>App <${AppPicker} id="report-app" value=${form.app_id} onChange=${(v) => set('app_id', v)} /></label>
      <label>From <input type="date" name="from" value=${form.from || ''} required onInput=${(e) => set('from', e.target.value)} /></label>
      <label>To <input type="date" name="to" value=${form.to || ''} required onInput=${(e) => set('to', e.target.value)} /></label>
      <label>Dates by
        <select name="date_type" value=${form.date_type || 'install'} onChange=${(e) => set('date_type', e.target.value === 'install' ? '' : e.target.value)}>
          <option value="install">estimated install day</option>
          <option value="arrival">arrival day</option>
        </select></label>
    </div>
    <fieldset class="group-by"><legend>Group by</legend>
      ${DIMENSIONS.map(([dim, label]) => html`<label class="check"><input type="checkbox" name=${'group-' + dim} checked=${groups.includes(dim)} onChange=${() => toggleGroup(dim)} /> ${label}</label>`)}
      ${groups.includes('source_identifier') && html`<label>Digits
        <select name="digits" value=${form.digits || ''} onChange=${(e) => set('digits', e.target.value)}>
          <option value="">as sent</option><option value="2">last 2</option><option value="3">last 3</option><option value="4">last 4</option>
        </select></label>`}
    </fieldset>
    <details class="filters" open=${FILTERS.some(([k]) => form[k]) || BOOLEAN_FILTERS.some(([k]) => form[k])}>
      <summary>Filters</summary>
      <div class="row">
        ${FILTERS.map(([key, label, hint]) => html`<label>${label} <input name=${key} value=${form[key] || ''} placeholder=${hint} onInput=${(e) => set(key, e.target.value.replace(/\s+/g, ''))} /></label>`)}
        ${BOOLEAN_FILTERS.map(([key, label]) => html`<label>${label}
          <select name=${key} value=${form[key] || ''} onChange=${(e) => set(key, e.target.value)}>
            <option value="">${key === 'development' ? 'production only' : 'any'}</option><option value="true">yes</option><option value="false">no</option>
            ${key === 'development' && html`<option value="true,false">both</option>`}
          </select></label>`)}
      </div>
    </details>
    <div class="actions"><button type="submit">Show report</button>
      <button type="button" class="secondary" onClick=${() => navigate('reports', { ...form, from: daysAgo(30), to: isoDay(new Date()) })}>Last 30 days</button>
      <button type="button" class="secondary" onClick=${() => navigate('reports', { ...form, from: daysAgo(90), to: isoDay(new Date()) })}>Last 90 days</button>
    </div>
  </form>`;
}

function ReportTable({ report, completeFrom }) {
  const [sort, setSort] = useState({ key: null, desc: true });
  const dims = report.group_by;
  const rows = useMemo(() => {
    const list = [...report.rows];
    if (sort.key) {
      const metric = METRICS.find((m) => m[0] === sort.key);
      const value = (row) => (metric ? metric[2](row) : row.group[sort.key]);
      list.sort((a, b) => {
        const x = value(a); const y = value(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * (sort.desc ? -1 : 1);
      });
    }
    return list;
  }, [report, sort]);
  const header = (key, label, dim) => {
    const active = sort.key === key;
    return html`<th scope="col" class=${dim ? 'dim' : ''} aria-sort=${active ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
      <button type="button" class="sort" onClick=${() => setSort({ key, desc: active ? !sort.desc : true })}>${label}<span aria-hidden="true">${active ? (sort.desc ? ' ▼' : ' ▲') : ''}</span></button></th>`;
  };
  const stillArriving = (row) => completeFrom && row.group.day && row.group.day >= completeFrom;
  return html`<div class="table-scroll" tabindex="0" role="region" aria-label="Report rows">
    <table class="report">
      <caption>${fmt.int(report.rows.length)} ${report.rows.length === 1 ? 'row' : 'rows'} · ${report.from} to ${report.to} by ${report.date_type} date</caption>
      <thead><tr>${dims.length ? dims.map((d) => header(d, d.replace(/_/g, ' '), true)) : html`<td></td>`}${METRICS.map(([k, l]) => header(k, l))}</tr></thead>
      <tbody>${!dims.length ? '' : html`
        ${rows.map((row) => html`<tr class=${stillArriving(row) ? 'arriving' : ''}>
          ${dims.map((d, i) => html`<th scope="row" class=${i ? 'sub' : ''}>${groupText(row.group[d])}${d === 'day' && stillArriving(row) ? html` <span class="badge">still arriving</span>` : ''}</th>`)}
          ${METRICS.map(([, , get, show]) => html`<td>${show ? show(get(row), row) : fmt.int(get(row))}</td>`)}
        </tr>`)}`}
      </tbody>
      <tfoot><tr><th scope="row" colspan=${Math.max(1, dims.length)}>Totals</th>
        ${METRICS.map(([, , get, show]) => html`<td>${show ? show(get(report.totals), report.totals) : fmt.int(get(report.totals))}</td>`)}</tr></tfoot>
    </table></div>`;
}

function CoarseWindows({ byWindow }) {
  if (!byWindow) return null;
  const rows = [0, 1, 2].map((w) => byWindow.rows.find((r) => r.group.window === w) || null);
  return html`<div class="table-scroll"><table class="coarse-windows">
    <caption>Coarse values and nulls per window (winning postbacks)</caption>
    <thead><tr><th scope="col">Window</th><th scope="col">low</th><th scope="col">medium</th><th scope="col">high</th><th scope="col">null</th><th scope="col">Null rate</th></tr></thead>
    <tbody>${rows.map((row, w) => {
      const h = (row && row.coarse_histogram) || { low: 0, medium: 0, high: 0 };
      const total = Math.max(1, h.low + h.medium + h.high + (row ? row.null_values : 0));
      const cell = (n) => html`<td><span class="bar" style=${{ '--share': n / total }}></span>${fmt.int(n)}</td>`;
      return html`<tr><th scope="row">${w}</th>${cell(h.low)}${cell(h.medium)}${cell(h.high)}${cell(row ? row.null_values : 0)}<td>${fmt.pct(row && row.null_rate)}</td></tr>`;
    })}</tbody></table></div>`;
}

function TierNulls({ byTier }) {
  if (!byTier) return null;
  return html`<div class="table-scroll"><table class="tiers">
    <caption>Null rate per crowd-anonymity tier</caption>
    <thead><tr><th scope="col">Tier</th><th scope="col">Postbacks</th><th scope="col">Null values</th><th scope="col">Null rate</th></tr></thead>
    <tbody>${byTier.rows.map((row) => html`<tr><th scope="row">${groupText(row.group.tier)}</th><td>${fmt.int(row.valid)}</td><td>${fmt.int(row.null_values)}</td><td>${fmt.pct(row.null_rate)}</td></tr>`)}</tbody>
  </table></div>`;
}

function ValueSplit({ byWindow }) {
  const w0 = byWindow && byWindow.rows.find((r) => r.group.window === 0);
  if (!w0 || !w0.fine_histogram) return null;
  const zero = w0.fine_histogram[0];
  const positive = w0.fine_histogram.slice(1).reduce((a, b) => a + b, 0);
  return html`<p class="split">Window 0: <strong>${fmt.int(zero)}</strong> with value 0 · <strong>${fmt.int(positive)}</strong> above 0 · <strong>${fmt.int(w0.null_values)}</strong> null (withheld by Apple or never set, never counted as 0).</p>`;
}

export function ReportsScreen({ params }) {
  const apps = useApps();
  const q = reportQuery(params);
  if (!q.app_id && apps.length) q.app_id = String(apps[0].app_id);
  if (!q.from) q.from = daysAgo(30);
  if (!q.to) q.to = isoDay(new Date());
  const key = query(q);
  const [state, setState] = useState({ loading: false });
  useEffect(() => {
    if (!q.app_id) return;
    let stale = false;
    setState({ loading: true });
    const filters = filtersOnly(q);
    const groups = (q.group_by || '').split(',').filter(Boolean);
    const dailyIsMain = groups.length === 1 && groups[0] === 'day';
    Promise.all([
      api('/v1/reports?' + key),
      api('/v1/reports?' + query({ ...filters, group_by: 'window', include: 'histograms' })),
      api('/v1/reports?' + query({ ...filters, group_by: 'tier' })),
      dailyIsMain ? null : api('/v1/reports?' + query({ ...filters, group_by: 'day' })),
      api(`/v1/apps/${q.app_id}/schema/versions`).catch(() => []),
    ]).then(([report, byWindow, byTier, daily, versions]) => {
      if (!stale) setState({ report, byWindow, byTier, daily: daily || report, versions });
    }).catch((error) => {
      if (!stale) setState({ error });
    });
    return () => { stale = true; };
  }, [key]);
  // A mark the browser tests read: how soon after the API's answers the report is on screen.
  useEffect(() => {
    if (state.report) performance.mark('skan:report-shown');
  }, [state.report]);
  const completeFrom = q.date_type === 'arrival' ? isoDay(new Date()) : daysAgo(COMPLETE_AFTER_DAYS[0]);
  const csv = async () => {
    try {
      const text = await api('/v1/reports?' + query({ ...q, format: 'csv' }), { text: true });
      download(`report-${q.app_id}-${q.from}-${q.to}.csv`, text, 'text/csv');
    } catch (error) {
      setState({ ...state, error });
    }
  };
  const fine = state.byWindow && state.byWindow.rows.find((r) => r.group.window === 0);
  return html`<section aria-labelledby="reports-title">
    <h1 id="reports-title">Reports</h1>
    <${ReportForm} q=${q} />
    <div class="toolbar" aria-label="Share and export">
      <button type="button" onClick=${csv} disabled=${!state.report}>Download CSV</button>
      <${CopyButton} text=${location.origin + location.pathname + '#/reports?' + key} label="Copy link" />
      <${CopyButton} text=${curlCommand(q)} label="Copy as curl" />
      <${CopyButton} text=${cliCommand(q)} label="Copy as CLI" />
    </div>
    <details class="commands"><summary>The same report from a terminal</summary>
      <pre><code>${curlCommand(q)}</code></pre><pre><code>${cliCommand(q)}</code></pre></details>
    <${ErrorNote} error=${state.error} />
    ${state.loading && html`<p class="loading" role="status">Loading the report…</p>`}
    ${state.report && html`<div class="report-body" aria-live="polite">
      <${ReportTable} report=${state.report} completeFrom=${completeFrom} />
      <p class="note arriving-note">Rows marked <span class="badge">still arriving</span>: ${q.date_type === 'arrival'
        ? 'today is not over, so more postbacks will arrive for it.'
        : `install days from ${completeFrom} on are incomplete: Apple sends window 0 postbacks up to ${COMPLETE_AFTER_DAYS[0]} days after the install, window 1 up to ${COMPLETE_AFTER_DAYS[1]} days and window 2 up to ${COMPLETE_AFTER_DAYS[2]} days after.`}</p>
      <div class="panels">
        <section class="panel wide" aria-labelledby="trend-title"><h2 id="trend-title">Installs and revenue over time</h2>
          <${TimeChart} report=${state.daily} versions=${state.versions} completeFrom=${completeFrom} dateType=${q.date_type || 'install'} /></section>
        <section class="panel" aria-labelledby="heat-title"><h2 id="heat-title">Fine values (window 0)</h2>
          ${fine && fine.fine_histogram ? html`<${HeatGrid} counts=${fine.fine_histogram} caption="Postbacks per fine value: row = high 3 bits, column = low 3 bits" />` : html`<p>No window 0 postbacks in this range.</p>`}
          <${ValueSplit} byWindow=${state.byWindow} /></section>
        <section class="panel" aria-labelledby="coarse-title"><h2 id="coarse-title">Coarse values and nulls</h2>
          <${CoarseWindows} byWindow=${state.byWindow} /><${TierNulls} byTier=${state.byTier} /></section>
      </div></div>`}
  </section>`;
}
