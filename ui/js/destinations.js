// The delivery desk: where postbacks are forwarded, how each partner is doing (state, breaker,
// queue), dead letters with the partner's last answer, retry and replay, and the request a
// postback would make.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone.js';
import { api, query } from './api.js';
import { ErrorNote, daysAgo, fmt, isoDay, navigate } from './util.js';

function stateOf(d) {
  if (!d.config.enabled) return d.disabled_reason ? `disabled: ${d.disabled_reason}` : 'disabled';
  if (d.failing_since_ms) return `failing since ${fmt.time(d.failing_since_ms)}`;
  return 'enabled';
}

function DeliveryDetail({ id, onChanged }) {
  const [detail, setDetail] = useState(null);
  const [error, setError] = useState(null);
  const [said, setSaid] = useState('');
  const load = () => api(`/v1/deliveries/${id}`).then(setDetail).catch(setError);
  useEffect(() => { setSaid(''); load(); }, [id]);
  const retry = async () => {
    setError(null);
    try {
      const d = await api(`/v1/deliveries/${id}/retry`, { method: 'POST' });
      setSaid(`Delivery ${d.id} queued for an attempt now.`);
      // Follow the attempt until it settles (or 15 s pass): the worker picks it up at once.
      for (let i = 0; i < 30; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const now = await api(`/v1/deliveries/${id}`);
        setDetail(now);
        if (now.state !== 'pending') break;
      }
      onChanged();
    } catch (e) {
      setError(e);
    }
  };
  if (!detail) return html`<${ErrorNote} error=${error} />`;
  return html`<article class="delivery" aria-labelledby="delivery-title">
    <h3 id="delivery-title">Delivery ${detail.id} of ${html`<${Subject} delivery=${detail} />`}</h3>
    <p>State <span class=${'state ' + detail.state}>${detail.state}</span> after ${detail.attempts} attempt${detail.attempts === 1 ? '' : 's'}; idempotency key <code>${detail.idempotency_key}</code>.</p>
    <button type="button" onClick=${retry}>Retry now</button> <span role="status" class="said">${said}</span>
    <${ErrorNote} error=${error} />
    <div class="table-scroll"><table><caption>Attempts</caption>
      <thead><tr><th scope="col">#</th><th scope="col">Started</th><th scope="col">Trigger</th><th scope="col">Status</th><th scope="col">Time</th><th scope="col">Error</th><th scope="col">Answer (first bytes)</th></tr></thead>
      <tbody>${detail.attempts_log.map((a) => html`<tr><th scope="row">${a.attempt}</th><td>${fmt.time(a.started_at_ms)}</td><td>${a.trigger}</td><td>${a.status ?? '–'}</td><td>${a.duration_ms} ms</td><td>${a.error || ''}</td><td><code class="excerpt">${a.response_excerpt || ''}</code></td></tr>`)}</tbody>
    </table></div>
  </article>`;
}

function Preview({ destinationId }) {
  const [postbackId, setPostbackId] = useState('');
  const [preview, setPreview] = useState(null);
  const [error, setError] = useState(null);
  const run = async (event) => {
    event.preventDefault();
    setError(null);
    try {
      setPreview(await api(`/v1/destinations/${destinationId}/preview`, { method: 'POST', body: { postback_id: Number(postbackId) } }));
    } catch (e) {
      setError(e);
      setPreview(null);
    }
  };
  return html`<form class="row" onSubmit=${run} aria-label="Preview a request">
    <label>Postback id <input name="preview-postback" inputmode="numeric" value=${postbackId} required onInput=${(e) => setPostbackId(e.target.value)} /></label>
    <button type="submit" class="secondary">Preview the request</button></form>
    <${ErrorNote} error=${error} />
    ${preview && (preview.request
      ? html`<pre class="raw" tabindex="0"><code>${preview.request.method} ${preview.request.url}\n${(preview.request.headers || []).map((h) => (Array.isArray(h) ? h.join(': ') : `${h.name}: ${h.value}`)).join('\n')}\n\n${preview.request.body || ''}</code></pre>`
      : html`<p>Would be skipped: ${preview.skipped}</p>`)}`;
}

function Replay({ destinationId, onDone }) {
  const [form, setForm] = useState({ from: daysAgo(7), to: isoDay(new Date()), resend: false });
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const run = async (event) => {
    event.preventDefault();
    setError(null);
    try {
      setResult(await api(`/v1/destinations/${destinationId}/replay`, { method: 'POST', body: { from: form.from, to: form.to, resend_delivered: form.resend } }));
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return html`<form class="row" onSubmit=${run} aria-label="Replay a time range">
    <label>Received from <input type="date" name="replay-from" value=${form.from} onInput=${(e) => setForm({ ...form, from: e.target.value })} /></label>
    <label>until <input type="date" name="replay-to" value=${form.to} onInput=${(e) => setForm({ ...form, to: e.target.value })} /></label>
    <label class="check"><input type="checkbox" checked=${form.resend} onChange=${(e) => setForm({ ...form, resend: e.target.checked })} /> also resend delivered</label>
    <button type="submit" class="secondary">Replay</button></form>
    <${ErrorNote} error=${error} />
    ${result && html`<p role="status">Queued: ${Object.entries(result).map(([k, v]) => `${k} ${v}`).join(', ')}.</p>`}`;
}

// What a delivery carries: a postback (linked to its page) or an anomaly (linked to its app's
// Data quality screen).
function Subject({ delivery: d }) {
  if (d.anomaly_id != null) {
    return html`<a href=${'#/quality?' + query({ app_id: d.app_id })}>anomaly ${d.anomaly_id}</a>`;
  }
  return html`<a href=${'#/postbacks?id=' + d.postback_id}>postback ${d.postback_id}</a>`;
}

export function DestinationsScreen({ params }) {
  const selected = params.get('destination');
  const delivery = params.get('delivery');
  const stateFilter = params.get('state') || 'dead';
  const [list, setList] = useState(null);
  const [deliveries, setDeliveries] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    api('/v1/destinations').then(setList).catch(setError);
  }, [tick]);
  useEffect(() => {
    if (!selected) return;
    api('/v1/deliveries?' + query({ destination: selected, state: stateFilter === 'all' ? '' : stateFilter, limit: 100 })).then((p) => setDeliveries(p.items)).catch(setError);
  }, [selected, stateFilter, tick]);
  const dest = list && list.find((d) => String(d.id) === selected);
  return html`<section aria-labelledby="destinations-title">
    <h1 id="destinations-title">Destinations and deliveries</h1>
    <${ErrorNote} error=${error} />
    ${list && html`<div class="table-scroll"><table class="destinations">
      <caption>${list.length} destination${list.length === 1 ? '' : 's'}; the breaker is this receiver's</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">URL</th><th scope="col">State</th><th scope="col">Breaker</th><th scope="col">Pending</th><th scope="col">Oldest pending</th><th scope="col">Dead</th></tr></thead>
      <tbody>${list.map((d) => html`<tr aria-current=${String(d.id) === selected ? 'true' : undefined}>
        <th scope="row"><a href=${'#/destinations?destination=' + d.id}>${d.config.name}</a>${d.config.filters?.alerts ? ' (alerts)' : ''}</th>
        <td class="url">${d.config.url}</td><td>${stateOf(d)}</td>
        <td><span class=${'state ' + (d.health ? d.health.breaker : '')}>${d.health ? d.health.breaker : '–'}</span>${d.health && d.health.breaker_open_until_ms ? ' until ' + fmt.time(d.health.breaker_open_until_ms) : ''}</td>
        <td>${fmt.int(d.health && d.health.pending)}</td><td>${d.health && d.health.oldest_pending_ms ? fmt.time(d.health.oldest_pending_ms) : '–'}</td>
        <td>${d.health && d.health.dead ? html`<strong>${fmt.int(d.health.dead)}</strong>` : '0'}</td></tr>`)}</tbody>
    </table></div>`}
    ${dest && html`<section class="desk" aria-labelledby="desk-title">
      <h2 id="desk-title">${dest.config.name}</h2>
      <label>Show deliveries <select name="state" value=${stateFilter} onChange=${(e) => navigate('destinations', { destination: selected, state: e.target.value })}>
        <option value="dead">dead letters</option><option value="pending">pending</option><option value="delivered">delivered</option><option value="skipped">skipped</option><option value="all">all</option></select></label>
      ${deliveries && html`<div class="table-scroll"><table class="deliveries">
        <thead><tr><th scope="col">Delivery</th><th scope="col">${dest.config.filters?.alerts ? 'Anomaly' : 'Postback'}</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Last status</th><th scope="col">Last error</th><th scope="col">Created</th></tr></thead>
        <tbody>${deliveries.map((x) => html`<tr aria-current=${String(x.id) === delivery ? 'true' : undefined}>
          <th scope="row"><a href=${'#/destinations?' + query({ destination: selected, state: stateFilter, delivery: x.id })}>${x.id}</a></th>
          <td><${Subject} delivery=${x} /></td><td><span class=${'state ' + x.state}>${x.state}</span></td><td>${x.attempts}</td>
          <td>${x.last_status ?? '–'}</td><td>${x.last_error || ''}</td><td>${fmt.time(x.created_at_ms)}</td></tr>`)}</tbody>
      </table>${!deliveries.length && html`<p>None.</p>`}</div>`}
      ${delivery && html`<${DeliveryDetail} id=${delivery} onChanged=${() => setTick(tick + 1)} />`}
      ${dest.config.filters?.alerts
        ? html`<p>This destination gets the anomalies that data-quality monitoring finds${dest.config.filters.apps?.length ? ' for apps ' + dest.config.filters.apps.join(', ') : ''}, and no postbacks.</p>`
        : html`<h3>Preview</h3><${Preview} destinationId=${selected} />
      <h3>Replay</h3><${Replay} destinationId=${selected} onDone=${() => setTick(tick + 1)} />`}
    </section>`}
  </section>`;
}
