// Data quality: the anomalies found for an app (what, where, expected against observed, and the
// baseline it was judged on), acknowledging and muting them, and the per-day, per-network rates
// behind them.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone.js';
import { api, query } from './api.js';
import { AppPicker, useApps } from './apps.js';
import { ErrorNote, daysAgo, fmt, isoDay, navigate } from './util.js';

const RATE = (m) => m !== 'postbacks' && m !== 'copies_per_postback' && m !== 'fine_value_shift';
const show = (m, x) => (RATE(m) ? fmt.pct(x) : m === 'postbacks' ? fmt.int(Math.round(x)) : Number(x).toFixed(2));

function AnomalyList({ anomalies, canEdit, onChange }) {
  const [error, setError] = useState(null);
  const act = async (path, method, body) => {
    setError(null);
    try {
      await api(path, { method, body });
      onChange();
    } catch (e) {
      setError(e);
    }
  };
  if (!anomalies.length) return html`<p role="status">No anomaly in this range: every network stayed within its usual range.</p>`;
  return html`<${ErrorNote} error=${error} />
    <ul class="anomalies">${anomalies.map((a) => html`<li class=${'anomaly' + (a.acknowledged_at ? ' acknowledged' : '') + (a.muted ? ' muted' : '')}>
      <h3>${a.day} · ${a.ad_network_id}: ${a.metric_label}</h3>
      <p>Observed <strong>${show(a.metric, a.observed)}</strong>; usual range ${show(a.metric, a.expected_low)} to ${show(a.metric, a.expected_high)}${" "}
        (expected ${show(a.metric, a.expected)}; score ${Number(a.score).toFixed(1)}).
        Baseline: ${a.baseline_days} days with data from ${a.baseline_from} to ${a.baseline_to}, weekday by weekday${a.partial_day ? '; judged on the hours that had passed of a day in progress' : ''}.</p>
      <p class="meta">Found ${a.detected_at.replace('T', ' ').slice(0, 16)} UTC${a.acknowledged_at ? ` · acknowledged by ${a.acknowledged_by}` : ''}${a.muted ? ' · muted' : ''}</p>
      ${canEdit && html`<div class="toolbar">
        ${!a.acknowledged_at && html`<button type="button" onClick=${() => act(`/v1/apps/${a.app_id}/anomalies/${a.id}/acknowledge`, 'POST')}>Acknowledge</button>`}
        <button type="button" onClick=${() => act(`/v1/apps/${a.app_id}/mutes`, a.muted ? 'DELETE' : 'PUT', { metric: a.metric, ad_network_id: a.ad_network_id })}>
          ${a.muted ? 'Unmute' : 'Mute'} ${a.metric_label} for ${a.ad_network_id}</button>
      </div>`}
    </li>`)}</ul>`;
}

function QualityTable({ report }) {
  if (!report.rows.length) return html`<p>No postbacks arrived in this range.</p>`;
  return html`<div class="table-scroll" tabindex="0" role="region" aria-label="Quality per day and network">
    <table><caption>Per arrival day and ad network</caption>
      <thead><tr><th scope="col">Day</th><th scope="col">Network</th><th scope="col">Postbacks</th><th scope="col">Copies each</th>
        <th scope="col">Invalid</th><th scope="col">Unverifiable</th><th scope="col">No value</th><th scope="col">Unmapped</th>
        <th scope="col">Mismatch</th><th scope="col">Apple + network / Apple / network</th><th scope="col">Arrival delay, window 1 (h)</th></tr></thead>
      <tbody>${report.rows.map((r) => html`<tr>
        <th scope="row">${r.day}</th><td>${r.ad_network_id}</td><td class="num">${fmt.int(r.postbacks)}</td>
        <td class="num">${r.copies_per_postback.toFixed(2)}</td><td class="num">${fmt.pct(r.invalid_rate)}</td>
        <td class="num">${fmt.pct(r.unverifiable_rate)}</td><td class="num">${fmt.pct(r.null_value_rate)}</td>
        <td class="num">${fmt.pct(r.unmapped_rate)}</td><td class="num">${fmt.pct(r.unsigned_mismatch_rate)}</td>
        <td class="num">${r.coverage.both} / ${r.coverage.apple_only} / ${r.coverage.network_only}</td>
        <td class="num">${r.arrival_delay_hours[0] === null ? '–' : r.arrival_delay_hours[0].toFixed(0)}</td></tr>`)}</tbody>
    </table></div>
    ${report.deliveries.length > 0 && html`<div class="table-scroll" tabindex="0" role="region" aria-label="Delivery per day and destination">
      <table><caption>Deliveries per arrival day and destination</caption>
        <thead><tr><th scope="col">Day</th><th scope="col">Destination</th><th scope="col">Owed</th><th scope="col">Delivered</th><th scope="col">p50</th><th scope="col">p95</th></tr></thead>
        <tbody>${report.deliveries.map((d) => html`<tr><th scope="row">${d.day}</th><td>${d.destination_name ?? 'destination ' + d.destination_id}</td><td class="num">${fmt.int(d.owed)}</td>
          <td class="num">${fmt.pct(d.coverage)}</td><td class="num">${d.p50_ms === null ? '–' : (d.p50_ms / 1000).toFixed(1) + ' s'}</td>
          <td class="num">${d.p95_ms === null ? '–' : (d.p95_ms / 1000).toFixed(1) + ' s'}</td></tr>`)}</tbody>
      </table></div>`}`;
}

export function QualityScreen({ session, params }) {
  const apps = useApps();
  const q = { app_id: params.get('app_id') || '', from: params.get('from') || daysAgo(27), to: params.get('to') || isoDay(new Date()) };
  if (!q.app_id && apps.length) q.app_id = String(apps[0].app_id);
  const [state, setState] = useState({});
  const [turn, setTurn] = useState(0);
  const key = query(q);
  useEffect(() => {
    if (!q.app_id) return;
    let stale = false;
    setState({ loading: true });
    const range = query({ from: q.from, to: q.to });
    Promise.all([
      api(`/v1/apps/${q.app_id}/anomalies?${range}`),
      api(`/v1/apps/${q.app_id}/quality?${range}`),
    ]).then(([anomalies, report]) => { if (!stale) setState({ anomalies, report }); })
      .catch((error) => { if (!stale) setState({ error }); });
    return () => { stale = true; };
  }, [key, turn]);
  const set = (name, value) => navigate('quality', { ...q, [name]: value }, true);
  return html`<section aria-labelledby="quality-title">
    <h1 id="quality-title">Data quality</h1>
    <form class="report-form row" onSubmit=${(e) => e.preventDefault()} aria-label="Quality query">
      <label>App <${AppPicker} id="quality-app" value=${q.app_id} onChange=${(v) => set('app_id', v)} /></label>
      <label>From <input id="quality-from" type="date" value=${q.from} onChange=${(e) => set('from', e.target.value)} /></label>
      <label>To <input id="quality-to" type="date" value=${q.to} onChange=${(e) => set('to', e.target.value)} /></label>
    </form>
    <${ErrorNote} error=${state.error} />
    ${state.loading && html`<p class="loading" role="status">Loading…</p>`}
    ${state.anomalies && html`<section aria-labelledby="anomalies-title"><h2 id="anomalies-title">Anomalies</h2>
      <${AnomalyList} anomalies=${state.anomalies} canEdit=${session.permissions.includes('edit_schemas')} onChange=${() => setTurn(turn + 1)} /></section>`}
    ${state.report && html`<section aria-labelledby="rates-title"><h2 id="rates-title">Rates</h2><${QualityTable} report=${state.report} /></section>`}
  </section>`;
}
