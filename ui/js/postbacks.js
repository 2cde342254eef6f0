// The postback inspector: find a postback by transaction id, then see every copy as received,
// what Apple signed and what it did not, how it was verified, when the install happened, what
// its value means, and where it was forwarded.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone.js';
import { api, query } from './api.js';
import { ErrorNote, eventsText, fmt, navigate, range } from './util.js';

const OUTCOME_TEXT = {
  valid: 'Apple\'s signature holds',
  invalid: 'the signature does not hold: quarantined, never counted as valid',
  unverifiable: 'the signature could not be checked (no key, or a field it needs is missing): kept, never counted as valid',
};

function Field({ name, value }) {
  return html`<div class="field"><dt>${name}</dt><dd>${value === null || value === undefined || value === '' ? '–' : String(value)}</dd></div>`;
}

function Detail({ id, session }) {
  const [detail, setDetail] = useState(null);
  const [deliveries, setDeliveries] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setDetail(null);
    setError(null);
    api(`/v1/postbacks/${id}`).then(setDetail).catch(setError);
    if (session.permissions.includes('manage_destinations')) {
      api('/v1/deliveries?' + query({ postback_id: id })).then((page) => setDeliveries(page.items)).catch(() => setDeliveries(null));
    }
  }, [id]);
  if (error) return html`<${ErrorNote} error=${error} />`;
  if (!detail) return html`<p class="loading" role="status">Loading postback ${id}…</p>`;
  const d = detail.decoded;
  const value = detail.fine_value !== null ? `fine ${detail.fine_value}` : detail.coarse_value ? `coarse ${detail.coarse_value}` : 'none (null)';
  return html`<article class="postback" aria-labelledby="postback-title">
    <h2 id="postback-title" tabindex="-1">Postback ${detail.id}: ${detail.transaction_id}</h2>
    <p class=${'outcome ' + detail.outcome}><strong>${detail.outcome}</strong>: ${OUTCOME_TEXT[detail.outcome] || ''}${detail.key_name ? ` (key ${detail.key_name})` : ''}${detail.reason_code ? html` · reason <code>${detail.reason_code}</code>: ${detail.reason_message}` : ''}</p>
    ${detail.unsigned_mismatch && html`<p class="note warn" role="note"><strong>Unsigned mismatch.</strong> Apple does not sign conversion values, and copies of this postback disagreed on them.
      It is counted once, with the values of the ${detail.values_channel === 'apple' ? 'copy that came straight from an Apple device' : 'forwarded copy (no Apple copy has arrived)'}; compare the receipts below.</p>`}
    <dl class="fields">
      <${Field} name="Protocol" value=${detail.protocol + (detail.version ? ' ' + detail.version : '')} />
      <${Field} name="App" value=${detail.app_id} />
      <${Field} name="Ad network" value=${detail.ad_network_id} />
      <${Field} name="Source identifier / campaign" value=${detail.source_identifier ?? detail.campaign_id} />
      <${Field} name="Window" value=${detail.window} />
      <${Field} name="Did win" value=${detail.did_win ? 'yes' : 'no'} />
      <${Field} name="Conversion type" value=${detail.conversion_type} />
      <${Field} name="Fidelity / interaction" value=${detail.interaction ?? detail.fidelity_type} />
      <${Field} name="Conversion value" value=${value} />
      <${Field} name="Values from" value=${detail.values_channel} />
      <${Field} name="Tier hint" value=${detail.tier_hint} />
      <${Field} name="Development" value=${detail.development ? 'yes' : 'no'} />
      <${Field} name="First received" value=${fmt.time(Date.parse(detail.first_received_at))} />
      <${Field} name="Install between" value=${`${fmt.time(Date.parse(detail.install_estimate.from))} and ${fmt.time(Date.parse(detail.install_estimate.to))}`} />
      <${Field} name="Estimated install day" value=${detail.install_estimate.day} />
    </dl>
    <h3>What the value means</h3>
    ${d ? html`<p>${d.status === 'mapped' ? html`<strong>${d.label || 'mapped'}</strong>${d.events.length ? ' · ' + eventsText(d.events) : ''}${d.revenue ? ' · ' + range(d.revenue, d.currency) : ''}${d.lock ? ' · locks the window' : ''}` : html`<strong>${d.status.replace('_', ' ')}</strong>`}
      ${d.schema_version ? html` (schema version ${d.schema_version}, the one in effect on the install day)` : ''}</p>`
      : html`<p>Not decoded: only valid postbacks are.</p>`}
    <h3>Signature coverage</h3>
    <div class="coverage">
      <div><h4>Signed by Apple</h4><ul>${detail.signed_fields.map((f) => html`<li><code>${f}</code></li>`)}</ul></div>
      <div><h4>Not signed</h4><ul>${detail.unsigned_fields.length ? detail.unsigned_fields.map((f) => html`<li><code>${f}</code></li>`) : html`<li>none</li>`}</ul></div>
    </div>
    <h3>Receipts (${detail.receipts.length})</h3>
    ${detail.receipts.map((r) => html`<section class="receipt" aria-label=${'Receipt ' + r.id}>
      <p><strong>${fmt.time(Date.parse(r.received_at))}</strong> via ${r.channel}${r.source_name ? ' (' + r.source_name + ')' : ''}: ${r.result}</p>
      <pre class="raw" tabindex="0"><code>${r.raw_encoding === 'utf8' ? pretty(r.raw) : r.raw}</code></pre></section>`)}
    ${deliveries && html`<h3>Deliveries (${deliveries.length})</h3>
      ${deliveries.length ? html`<div class="table-scroll"><table><thead><tr><th scope="col">Delivery</th><th scope="col">Destination</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Last status</th><th scope="col">Last error</th></tr></thead>
        <tbody>${deliveries.map((x) => html`<tr><th scope="row"><a href=${'#/destinations?destination=' + x.destination_id + '&delivery=' + x.id}>${x.id}</a></th><td>${x.destination_id}</td><td><span class=${'state ' + x.state}>${x.state}</span></td><td>${x.attempts}</td><td>${x.last_status ?? '–'}</td><td>${x.last_error || ''}</td></tr>`)}</tbody></table></div>`
        : html`<p>No destination took this postback.</p>`}`}
  </article>`;
}

function pretty(raw) {
  try {
    return JSON.stringify(JSON.parse(raw), null, 2);
  } catch (_) {
    return raw;
  }
}

export function PostbacksScreen({ params, session }) {
  const tx = params.get('transaction_id') || '';
  const outcome = params.get('outcome') || '';
  const id = params.get('id');
  const [text, setText] = useState(tx);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => setText(tx), [tx]);
  useEffect(() => {
    setError(null);
    api('/v1/postbacks?' + query({ transaction_id: tx, outcome, limit: 50 })).then((p) => {
      setPage(p);
      if (tx && p.items.length === 1 && !id) navigate('postbacks', { transaction_id: tx, id: p.items[0].id }, true);
    }).catch(setError);
  }, [tx, outcome]);
  return html`<section aria-labelledby="postbacks-title">
    <h1 id="postbacks-title">Postbacks</h1>
    <form class="row" role="search" onSubmit=${(e) => { e.preventDefault(); navigate('postbacks', { transaction_id: text.trim(), outcome }); }}>
      <label class="grow">Transaction id <input name="transaction_id" value=${text} placeholder="transaction-id or postback-identifier" onInput=${(e) => setText(e.target.value)} /></label>
      <label>Outcome <select name="outcome" value=${outcome} onChange=${(e) => navigate('postbacks', { transaction_id: tx, outcome: e.target.value })}>
        <option value="">any</option><option value="valid">valid</option><option value="invalid">invalid</option><option value="unverifiable">unverifiable</option></select></label>
      <button type="submit">Search</button>
    </form>
    <${ErrorNote} error=${error} />
    <div class="inspector">
      ${page && html`<div class="table-scroll list"><table>
        <caption>${tx ? `Postbacks with transaction id ${tx}` : 'Latest postbacks'}</caption>
        <thead><tr><th scope="col">Id</th><th scope="col">Transaction</th><th scope="col">Network</th><th scope="col">Outcome</th><th scope="col">Value</th><th scope="col">First received</th></tr></thead>
        <tbody>${page.items.map((p) => html`<tr aria-current=${String(p.id) === id ? 'true' : undefined}><th scope="row"><a href=${'#/postbacks?' + query({ transaction_id: tx, outcome, id: p.id })}>${p.id}</a></th>
          <td>${p.transaction_id}</td><td>${p.ad_network_id}</td><td><span class=${'state ' + p.outcome}>${p.outcome}</span>${p.unsigned_mismatch ? html` <span class="badge">mismatch</span>` : ''}</td>
          <td>${p.fine_value ?? p.coarse_value ?? 'null'}</td><td>${fmt.time(p.first_received_at_ms)}</td></tr>`)}</tbody>
      </table>${!page.items.length && html`<p>No postback matches.</p>`}</div>`}
      ${id && html`<${Detail} id=${id} session=${session} />`}
    </div>
  </section>`;
}
