// The schema editor: an app's conversion-value schema as an 8x8 grid of fine values with the
// coarse values of the three windows beside it; live validation by the server, a diff and a
// simulation on past postbacks before saving, and every version kept.
import { html, useEffect, useMemo, useState } from '../vendor/htm-preact-standalone.js';
import { api, query } from './api.js';
import { AppPicker, useApps } from './apps.js';
import { ErrorNote, daysAgo, eventsText, fmt, isoDay, navigate, range, useDebounced } from './util.js';
import { SchemaGrid, bits } from './grid.js';

const COARSE = ['low', 'medium', 'high'];

function emptySchema() {
  return { currency: 'USD', windows: [{ window: 0, fine: [] }] };
}

function windowOf(schema, w) {
  return schema.windows.find((x) => x.window === w);
}

/** The schema with `list` of window `w` replaced by `update(list)`. */
function withList(schema, w, list, update) {
  const windows = schema.windows.some((x) => x.window === w) ? schema.windows : [...schema.windows, { window: w }];
  return {
    ...schema,
    windows: windows.map((x) => {
      if (x.window !== w) return x;
      const next = { ...x, [list]: update(x[list] || []) };
      if (!next[list].length) delete next[list];
      return next;
    }).filter((x) => (x.fine && x.fine.length) || (x.coarse && x.coarse.length) || x.window === 0)
      .sort((a, b) => a.window - b.window),
  };
}

/** Text <-> events: `purchase:1-2, tutorial` means purchase once or twice, and a tutorial. */
export function parseEvents(text) {
  return text.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const [name, counts] = part.split(':').map((s) => s.trim());
    const event = { name };
    if (counts) {
      const [min, max] = counts.split('-').map((s) => s.trim());
      if (min) event.min_count = Number(min);
      if (max === undefined) event.max_count = Number(min);
      else if (max) event.max_count = Number(max);
    }
    return event;
  });
}

function eventsInput(events) {
  return (events || []).map((e) => {
    if (e.min_count === undefined && e.max_count === undefined) return e.name;
    if (e.min_count === e.max_count) return `${e.name}:${e.min_count}`;
    return `${e.name}:${e.min_count ?? ''}-${e.max_count ?? ''}`;
  }).join(', ');
}

function mappingFrom(form, value, isFine) {
  const m = { value };
  if (form.label.trim()) m.label = form.label.trim();
  const events = parseEvents(form.events);
  if (events.length) m.events = events;
  if (form.min !== '' || form.max !== '') {
    m.revenue = { min: form.min === '' ? 0 : Number(form.min) };
    if (form.max !== '') m.revenue.max = Number(form.max);
  }
  if (form.lock) m.lock = true;
  if (isFine && form.coarse) m.coarse = form.coarse;
  return m;
}

function formFrom(mapping) {
  return {
    label: (mapping && mapping.label) || '',
    events: eventsInput(mapping && mapping.events),
    min: mapping && mapping.revenue ? String(mapping.revenue.min) : '',
    max: mapping && mapping.revenue && mapping.revenue.max !== undefined ? String(mapping.revenue.max) : '',
    coarse: (mapping && mapping.coarse) || '',
    lock: Boolean(mapping && mapping.lock),
  };
}

function describeMapping(m, currency) {
  if (!m) return 'unmapped';
  return [m.label, eventsText(m.events), range(m.revenue, currency), m.coarse && 'coarse ' + m.coarse, m.lock && 'locks the window'].filter(Boolean).join(' · ') || 'mapped';
}

/** Findings keyed by fine value (window 0) and by `window:coarse`. */
function findingsByCell(report) {
  const byFine = {};
  const byCoarse = {};
  if (!report) return { byFine, byCoarse };
  const add = (f, severity) => {
    if (f.value === null || f.value === undefined) return;
    const entry = { ...f, severity };
    if (/^\d+$/.test(f.value) && (f.window === 0 || f.window === null)) (byFine[Number(f.value)] ||= []).push(entry);
    else if (COARSE.includes(f.value)) (byCoarse[`${f.window ?? 0}:${f.value}`] ||= []).push(entry);
  };
  report.errors.forEach((f) => add(f, 'error'));
  report.warnings.forEach((f) => add(f, 'warning'));
  return { byFine, byCoarse };
}

function EditPanel({ target, draft, setDraft, seed, onDone }) {
  const isFine = target.kind === 'fine';
  const values = isFine ? Array.from({ length: target.hi - target.lo + 1 }, (_, i) => target.lo + i) : [target.value];
  const list = isFine ? ((windowOf(draft, 0) || {}).fine || []) : ((windowOf(draft, target.window) || {}).coarse || []);
  const first = list.find((m) => m.value === values[0]);
  const [form, setForm] = useState(formFrom(first));
  useEffect(() => {
    const f = formFrom(first);
    if (seed) f.label = seed;
    setForm(f);
  }, [target.key, seed]);
  const set = (k, v) => setForm({ ...form, [k]: v });
  const w = isFine ? 0 : target.window;
  const kind = isFine ? 'fine' : 'coarse';
  const apply = (event) => {
    event.preventDefault();
    setDraft(withList(draft, w, kind, (old) => {
      const kept = old.filter((m) => !values.includes(m.value));
      const added = values.map((v) => mappingFrom(form, v, isFine));
      return [...kept, ...added].sort((a, b) => (isFine ? a.value - b.value : COARSE.indexOf(a.value) - COARSE.indexOf(b.value)));
    }));
    onDone();
  };
  const clear = () => {
    setDraft(withList(draft, w, kind, (old) => old.filter((m) => !values.includes(m.value))));
    onDone();
  };
  const title = isFine ? (values.length > 1 ? `Fine values ${target.lo}–${target.hi}` : `Fine value ${target.lo} (${bits(target.lo, 6)})`) : `Window ${target.window}, coarse ${target.value}`;
  return html`<form class="edit-panel" onSubmit=${apply} aria-labelledby="edit-title">
    <h3 id="edit-title">Edit ${title}</h3>
    <label>Label <input id="edit-label" name="label" value=${form.label} onInput=${(e) => set('label', e.target.value)} /></label>
    <label>Events <input name="events" value=${form.events} placeholder="purchase:1-2, tutorial" aria-describedby="events-help" onInput=${(e) => set('events', e.target.value)} /></label>
    <p id="events-help" class="help">Comma-separated; <code>name:min-max</code> for counts (<code>purchase:2</code> = exactly twice, <code>purchase:2-</code> = at least twice).</p>
    <div class="row">
      <label>Revenue from <input name="revenue-min" type="number" step="any" min="0" value=${form.min} onInput=${(e) => set('min', e.target.value)} /></label>
      <label>to (excluded) <input name="revenue-max" type="number" step="any" min="0" value=${form.max} placeholder="no limit" onInput=${(e) => set('max', e.target.value)} /></label>
    </div>
    <div class="row">
      ${isFine && html`<label>Coarse value sent with it <select name="coarse" value=${form.coarse} onChange=${(e) => set('coarse', e.target.value)}>
        <option value="">none</option>${COARSE.map((c) => html`<option value=${c}>${c}</option>`)}</select></label>`}
      <label class="check"><input type="checkbox" name="lock" checked=${form.lock} onChange=${(e) => set('lock', e.target.checked)} /> Locks the window</label>
    </div>
    <div class="actions">
      <button type="submit">Apply to ${values.length} value${values.length > 1 ? 's' : ''}</button>
      <button type="button" class="secondary" onClick=${clear}>Unmap</button>
      <button type="button" class="secondary" onClick=${onDone}>Cancel</button>
    </div>
  </form>`;
}

function CoarsePanel({ draft, byCoarse, onEdit, canEdit, changedCoarse }) {
  return html`<div class="coarse-panel">
    ${[0, 1, 2].map((w) => {
      const list = (windowOf(draft, w) || {}).coarse || [];
      return html`<table class="coarse-table">
        <caption>Window ${w}${w ? '' : ' (coarse, at lower tiers)'}</caption>
        <tbody>${COARSE.map((c) => {
          const m = list.find((x) => x.value === c);
          const problems = byCoarse[`${w}:${c}`] || [];
          const changed = changedCoarse.has(`${w}:${c}`);
          const text = describeMapping(m, draft.currency);
          return html`<tr class=${problems.length ? 'has-error' : ''}><th scope="row"><span class=${'coarse c-' + c}>${c}</span></th>
            <td>${canEdit ? html`<button type="button" class="link" aria-label=${`Edit window ${w} coarse ${c}: ${text}`} onClick=${() => onEdit(w, c)}>${text}</button>` : text}
              ${changed ? html` <span class="badge">changed</span>` : ''}
              ${problems.map((f) => html`<div class=${'finding ' + f.severity}>${f.severity}: ${f.message}</div>`)}</td></tr>`;
        })}</tbody></table>`;
    })}</div>`;
}

function BitHelper({ draft }) {
  const [value, setValue] = useState(42);
  const fine = (windowOf(draft, 0) || {}).fine || [];
  const m = fine.find((x) => x.value === value);
  const setBit = (bit, on) => setValue(on ? value | (1 << bit) : value & ~(1 << bit));
  return html`<fieldset class="bit-helper"><legend>Bit layout</legend>
    <label>Value <input type="number" name="bit-value" min="0" max="63" value=${value} onInput=${(e) => setValue(Math.max(0, Math.min(63, Number(e.target.value) || 0)))} /></label>
    <span class="bits" role="group" aria-label="Bits, most significant first">
      ${[5, 4, 3, 2, 1, 0].map((b) => html`<label class="bit"><input type="checkbox" checked=${Boolean(value & (1 << b))} onChange=${(e) => setBit(b, e.target.checked)} /> <span>bit ${b}</span></label>`)}
    </span>
    <output aria-live="polite">${value} = 0b${bits(value, 6)} → ${describeMapping(m, draft.currency)}</output>
  </fieldset>`;
}

function Generators({ onGenerated }) {
  const [kind, setKind] = useState('revenue_buckets');
  const [form, setForm] = useState({ currency: 'USD', edges: '0,0.99,4.99,9.99,19.99,49.99', revenue_event: 'purchase', revenue_bits: '3', flags: '3=registration,4=tutorial,5=purchase' });
  const [error, setError] = useState(null);
  const set = (k, v) => setForm({ ...form, [k]: v });
  const generate = async (event) => {
    event.preventDefault();
    setError(null);
    const edges = form.edges.split(',').map((s) => Number(s.trim()));
    const body = kind === 'revenue_buckets'
      ? { kind, currency: form.currency, edges, revenue_event: form.revenue_event || undefined }
      : { kind, currency: form.currency, edges, revenue_bits: Number(form.revenue_bits), flags: form.flags.split(',').filter(Boolean).map((f) => { const [bit, name] = f.split('='); return { bit: Number(bit), event: (name || '').trim() }; }) };
    try {
      const generated = await api('/v1/schemas/generate', { method: 'POST', body });
      onGenerated(generated.schema);
    } catch (e) {
      setError(e);
    }
  };
  return html`<details class="generators"><summary>Generate a schema</summary>
    <form onSubmit=${generate}>
      <label>Layout <select name="generator" value=${kind} onChange=${(e) => setKind(e.target.value)}>
        <option value="revenue_buckets">Revenue buckets (value i = bucket i)</option>
        <option value="bit_packed">Bit-packed (revenue in low bits, event flags in high bits)</option></select></label>
      <div class="row">
        <label>Currency <input name="currency" value=${form.currency} size="4" onInput=${(e) => set('currency', e.target.value)} /></label>
        <label>Bucket edges <input name="edges" value=${form.edges} onInput=${(e) => set('edges', e.target.value)} /></label>
        ${kind === 'revenue_buckets'
          ? html`<label>Revenue event <input name="revenue_event" value=${form.revenue_event} onInput=${(e) => set('revenue_event', e.target.value)} /></label>`
          : html`<label>Revenue bits <input name="revenue_bits" type="number" min="1" max="5" value=${form.revenue_bits} onInput=${(e) => set('revenue_bits', e.target.value)} /></label>
            <label>Flags (bit=event) <input name="flags" value=${form.flags} onInput=${(e) => set('flags', e.target.value)} /></label>`}
      </div>
      <button type="submit">Replace the draft</button>
      <${ErrorNote} error=${error} />
    </form></details>`;
}

function ChangeList({ diff }) {
  if (!diff) return null;
  if (!diff.changes.length && !diff.currency_before) return html`<p role="status">No value changes its meaning.</p>`;
  return html`<ul class="changes">
    ${diff.currency_before && html`<li>Currency ${diff.currency_before} → ${diff.currency_after}</li>`}
    ${diff.changes.map((c) => html`<li><strong>${c.change}</strong> window ${c.window} ${c.kind} ${c.value}:${' '}
      ${c.before ? html`<span class="before">${describeMapping(c.before)}</span>` : ''}${c.before && c.after ? ' → ' : ''}${c.after ? html`<span class="after">${describeMapping(c.after)}</span>` : ''}</li>`)}
  </ul>`;
}

function SimulateResult({ result }) {
  if (!result) return null;
  const dims = result.current.group_by;
  const keyOf = (row) => JSON.stringify(row.group);
  const draftRows = new Map(result.draft.rows.map((r) => [keyOf(r), r]));
  const rows = result.current.rows.map((r) => [r, draftRows.get(keyOf(r))]);
  const rev = (m) => (m && m.revenue[0] ? m.revenue[0].mid : null);
  const mapped = (m) => (m ? m.decoded.mapped : null);
  const events = (m) => (m ? m.events.map((e) => `${e.name} ${e.postbacks}`).join(', ') || '–' : '–');
  const table = (title, pick, draftSide) => html`<div class="table-scroll"><table class="sim">
    <caption>${title}</caption>
    <thead><tr>${dims.map((d) => html`<th scope="col" class="dim">${d.replace(/_/g, ' ')}</th>`)}<th scope="col">Mapped</th><th scope="col">Revenue (mid)</th>${draftSide ? html`<th scope="col">Change</th>` : ''}${dims.includes('event') ? '' : html`<th scope="col" class="dim">Events</th>`}</tr></thead>
    <tbody>${rows.map(([cur, dr]) => { const m = pick(cur, dr); return html`<tr>${dims.map((d) => html`<th scope="row">${String(cur.group[d] ?? '(none)')}</th>`)}<td>${fmt.int(mapped(m))}</td><td>${rev(m) === null ? '–' : fmt.money(rev(m))}</td>${draftSide ? html`<td>${fmt.delta(rev(cur), rev(dr))}</td>` : ''}${dims.includes('event') ? '' : html`<td class="text">${events(m)}</td>`}</tr>`; })}
      <tr class="total"><th scope="row" colspan=${Math.max(1, dims.length)}>Totals</th>${(() => { const m = pick(result.current.totals, result.draft.totals); return html`<td>${fmt.int(mapped(m))}</td><td>${rev(m) === null ? '–' : fmt.money(rev(m))}</td>${draftSide ? html`<td>${fmt.delta(rev(result.current.totals), rev(result.draft.totals))}</td>` : ''}${dims.includes('event') ? '' : html`<td class="text">${events(m)}</td>`}`; })()}</tr>
    </tbody></table></div>`;
  return html`<div class="simulation" aria-live="polite">
    ${table('As stored versions decode it', (c) => c, false)}
    ${table('Under the draft', (c, d) => d, true)}
    <p class="deltas"><strong>Change with the draft:</strong> revenue (mid) ${fmt.delta(rev(result.current.totals), rev(result.draft.totals))},
      mapped postbacks ${fmt.delta(mapped(result.current.totals), mapped(result.draft.totals))}.</p>
  </div>`;
}

export function SchemaScreen({ session, params }) {
  const apps = useApps();
  const appId = params.get('app_id') || (apps[0] && String(apps[0].app_id)) || '';
  const canEdit = session.permissions.includes('edit_schemas');
  const [current, setCurrent] = useState(null);
  const [versions, setVersions] = useState([]);
  const [draft, setDraft] = useState(emptySchema());
  const [loadError, setLoadError] = useState(null);
  const [selection, setSelection] = useState({ anchor: 0, focus: 0 });
  const [editing, setEditing] = useState(null);
  const [seed, setSeed] = useState('');
  const [validation, setValidation] = useState(null);
  const [review, setReview] = useState(null);
  const [saveForm, setSaveForm] = useState({ effective_from: '', note: '' });
  const [saved, setSaved] = useState(null);
  const [actionError, setActionError] = useState(null);
  const [mode, setMode] = useState('meaning');
  const [volume, setVolume] = useState(null);
  const [sim, setSim] = useState({ from: daysAgo(30), to: isoDay(new Date()), date_type: 'install', group_by: 'event' });
  const [simResult, setSimResult] = useState(null);
  const [compare, setCompare] = useState({ n: '', m: '', diff: null });
  const [reload, setReload] = useState(0);

  useEffect(() => {
    if (!appId) return;
    setLoadError(null);
    setReview(null);
    setSimResult(null);
    Promise.all([
      api(`/v1/apps/${appId}/schema`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
      api(`/v1/apps/${appId}/schema/versions`).catch((e) => (e.status === 404 ? [] : Promise.reject(e))),
    ]).then(([cur, list]) => {
      setCurrent(cur);
      setVersions(list);
      setDraft(cur ? cur.schema : emptySchema());
      if (list.length > 1) setCompare({ n: String(list[list.length - 2].version), m: String(list[list.length - 1].version), diff: null });
    }).catch(setLoadError);
  }, [appId, reload]);

  const settled = useDebounced(draft, 250);
  useEffect(() => {
    if (!appId) return;
    let stale = false;
    api(`/v1/apps/${appId}/schema/validate`, { method: 'POST', body: { schema: settled } })
      .then((report) => { if (!stale) setValidation(report); })
      .catch((e) => { if (!stale) setValidation({ valid: false, errors: [{ code: e.code, message: e.message, field: e.field }], warnings: [] }); });
    return () => { stale = true; };
  }, [settled, appId]);

  useEffect(() => {
    if (mode !== 'volume' || !appId) return;
    api('/v1/reports?' + query({ app_id: appId, from: daysAgo(90), to: isoDay(new Date()), window: '0', include: 'histograms' }))
      .then((r) => setVolume(r.totals.fine_histogram || new Array(64).fill(0)))
      .catch((e) => { setVolume(new Array(64).fill(0)); setActionError(e); });
  }, [mode, appId]);

  const cells = useMemo(() => {
    const out = new Array(64).fill(null);
    for (const m of (windowOf(draft, 0) || {}).fine || []) {
      if (m.value >= 0 && m.value < 64) out[m.value] = { ...m, eventsText: eventsText(m.events), revenueText: range(m.revenue, draft.currency) };
    }
    return out;
  }, [draft]);
  const { byFine, byCoarse } = findingsByCell(validation);
  const changedFine = new Set((review ? review.changes : []).filter((c) => c.kind === 'fine').map((c) => Number(c.value)));
  const changedCoarse = new Set((review ? review.changes : []).filter((c) => c.kind === 'coarse').map((c) => `${c.window}:${c.value}`));
  const dirty = JSON.stringify(draft) !== JSON.stringify(current ? current.schema : emptySchema());

  const startEdit = (text) => {
    if (!canEdit) return;
    const lo = Math.min(selection.anchor, selection.focus);
    const hi = Math.max(selection.anchor, selection.focus);
    setSeed(text);
    setEditing({ kind: 'fine', lo, hi, key: `f${lo}-${hi}-${Date.now()}` });
    setTimeout(() => { const input = document.getElementById('edit-label'); if (input) { input.focus(); if (!text) input.select(); } }, 0);
  };
  const editCoarse = (w, c) => {
    setSeed('');
    setEditing({ kind: 'coarse', window: w, value: c, key: `c${w}-${c}-${Date.now()}` });
    setTimeout(() => { const input = document.getElementById('edit-label'); if (input) { input.focus(); input.select(); } }, 0);
  };
  const doneEditing = () => {
    setEditing(null);
    setReview(null);
    setTimeout(() => { const cell = document.querySelector(`.schema-grid [data-value="${selection.focus}"]`); if (cell) cell.focus(); }, 0);
  };
  const paste = (text) => {
    if (!canEdit) return;
    const lines = text.split(/\r?\n/).filter((l) => l.trim());
    if (!lines.length) return;
    const lo = Math.min(selection.anchor, selection.focus);
    const hi = Math.max(selection.anchor, selection.focus);
    const count = lines.length === 1 ? hi - lo + 1 : lines.length;
    const parsed = lines.map((l) => { const [label = '', events = '', min = '', max = '', coarse = ''] = l.split('\t'); return { label, events, min: min.trim(), max: max.trim(), coarse: coarse.trim(), lock: false }; });
    const values = Array.from({ length: Math.min(count, 64 - lo) }, (_, i) => lo + i);
    setDraft(withList(draft, 0, 'fine', (old) => [...old.filter((m) => !values.includes(m.value)), ...values.map((v, i) => mappingFrom(parsed[lines.length === 1 ? 0 : i], v, true))].sort((a, b) => a.value - b.value)));
    setReview(null);
  };
  const doReview = async () => {
    setActionError(null);
    try {
      setReview(await api(`/v1/apps/${appId}/schema/diff`, { method: 'POST', body: { schema: draft } }));
    } catch (e) {
      setActionError(e);
    }
  };
  const save = async (event) => {
    event.preventDefault();
    setActionError(null);
    try {
      const body = { schema: draft, note: saveForm.note || undefined };
      if (saveForm.effective_from) body.effective_from = new Date(saveForm.effective_from + 'Z').toISOString();
      const applied = await api(`/v1/apps/${appId}/schema`, { method: 'PUT', body });
      setSaved(applied.version);
      setReview(null);
      setSaveForm({ effective_from: '', note: '' });
      setReload(reload + 1);
    } catch (e) {
      setActionError(e);
    }
  };
  const simulate = async (event) => {
    event.preventDefault();
    setActionError(null);
    setSimResult(null);
    try {
      setSimResult(await api(`/v1/apps/${appId}/schema/simulate`, { method: 'POST', body: { schema: draft, from: sim.from, to: sim.to, date_type: sim.date_type, group_by: sim.group_by ? [sim.group_by] : [] } }));
    } catch (e) {
      setActionError(e);
    }
  };
  const compareVersions = async (event) => {
    event.preventDefault();
    try {
      setCompare({ ...compare, diff: await api(`/v1/apps/${appId}/schema/versions/${compare.n}/diff/${compare.m}`) });
    } catch (e) {
      setActionError(e);
    }
  };

  const errors = validation ? validation.errors : [];
  const warnings = validation ? validation.warnings : [];
  return html`<section aria-labelledby="schema-title">
    <h1 id="schema-title">Schema editor</h1>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); navigate('schema', { app_id: e.target.elements.app_id.value }); }}>
      <label>App <${AppPicker} id="schema-app" value=${appId} onChange=${() => {}} /></label>
      <button type="submit" class="secondary">Open</button>
    </form>
    <${ErrorNote} error=${loadError} />
    <p class="status-line" role="status">
      ${current ? html`In effect: <strong>version ${current.version}</strong> since ${fmt.time(Date.parse(current.effective_from))} by ${current.author}${current.note ? ' (' + current.note + ')' : ''}.` : 'No version in effect yet.'}
      ${dirty ? html` <span class="badge">draft has unsaved changes</span>` : ''}
      ${saved ? html` <span class="badge ok">Saved version ${saved.version}</span>` : ''}
    </p>
    <div class="editor-layout">
      <div class="grid-column">
        <div class="mode" role="group" aria-label="What the cells show">
          <button type="button" aria-pressed=${mode === 'meaning'} onClick=${() => setMode('meaning')}>Meaning</button>
          <button type="button" aria-pressed=${mode === 'volume'} onClick=${() => setMode('volume')}>Coverage (last 90 days)</button>
        </div>
        <${SchemaGrid} cells=${cells} selection=${selection} onSelect=${setSelection} onStartEdit=${startEdit} onPaste=${paste}
          findings=${byFine} changed=${changedFine} volume=${mode === 'volume' ? volume : null} mode=${mode} />
        ${canEdit && editing && html`<${EditPanel} target=${editing} draft=${draft} setDraft=${setDraft} seed=${seed} onDone=${doneEditing} />`}
        ${canEdit && !editing && html`<p class="help"><button type="button" onClick=${() => startEdit('')}>Edit selected values ${Math.min(selection.anchor, selection.focus)}–${Math.max(selection.anchor, selection.focus)}</button></p>`}
      </div>
      <div class="side-column">
        <${CoarsePanel} draft=${draft} byCoarse=${byCoarse} onEdit=${editCoarse} canEdit=${canEdit} changedCoarse=${changedCoarse} />
        <${BitHelper} draft=${draft} />
      </div>
    </div>
    <section class="validation" aria-labelledby="validation-title">
      <h2 id="validation-title">Validation</h2>
      <div role="status" aria-live="polite" class="validation-summary">
        ${validation ? (errors.length ? html`<strong class="bad">${errors.length} error${errors.length > 1 ? 's' : ''}</strong>` : html`<strong class="good">No errors</strong>`) : 'Checking…'}
        ${warnings.length ? html`, ${warnings.length} warning${warnings.length > 1 ? 's' : ''}` : ''}
      </div>
      <ul class="findings">${[...errors.map((f) => ['error', f]), ...warnings.slice(0, 20).map((f) => ['warning', f])].map(([severity, f]) => html`<li class=${'finding ' + severity}>${severity}: ${f.message}${f.field ? html` <code>${f.field}</code>` : ''}</li>`)}
        ${warnings.length > 20 ? html`<li>and ${warnings.length - 20} more warnings</li>` : ''}</ul>
    </section>
    <${ErrorNote} error=${actionError} />
    ${canEdit && html`<section class="publish" aria-labelledby="publish-title">
      <h2 id="publish-title">Review and save</h2>
      <button type="button" onClick=${doReview} disabled=${errors.length > 0}>Review changes against the version in effect</button>
      ${review && html`<div class="review"><p>Against ${review.against_version ? 'version ' + review.against_version : 'no version (first schema)'}: ${review.changes.length} value${review.changes.length === 1 ? '' : 's'} change meaning.</p><${ChangeList} diff=${review} /></div>`}
      <form onSubmit=${save} class="save-form">
        <div class="row">
          <label>Effective from (UTC) <input type="datetime-local" name="effective_from" value=${saveForm.effective_from} onInput=${(e) => setSaveForm({ ...saveForm, effective_from: e.target.value })} /></label>
          <label class="grow">Note <input name="note" value=${saveForm.note} placeholder="why it changed" onInput=${(e) => setSaveForm({ ...saveForm, note: e.target.value })} /></label>
        </div>
        <p class="help">Empty means now. An earlier time re-decodes the installs since then. Partners may need time too: Meta asks for a 3-day campaign pause, other networks up to 48 hours.</p>
        <button type="submit" disabled=${errors.length > 0 || !dirty}>Save as a new version</button>
      </form>
      <${Generators} onGenerated=${(schema) => { setDraft(schema); setReview(null); }} />
    </section>`}
    ${canEdit && html`<section class="simulate" aria-labelledby="simulate-title">
      <h2 id="simulate-title">Simulate the draft on past postbacks</h2>
      <form class="row" onSubmit=${simulate}>
        <label>From <input type="date" name="sim-from" value=${sim.from} onInput=${(e) => setSim({ ...sim, from: e.target.value })} /></label>
        <label>To <input type="date" name="sim-to" value=${sim.to} onInput=${(e) => setSim({ ...sim, to: e.target.value })} /></label>
        <label>Dates by <select name="sim-date-type" value=${sim.date_type} onChange=${(e) => setSim({ ...sim, date_type: e.target.value })}><option value="install">install day</option><option value="arrival">arrival day</option></select></label>
        <label>Group by <select name="sim-group" value=${sim.group_by} onChange=${(e) => setSim({ ...sim, group_by: e.target.value })}>
          <option value="">nothing (totals)</option><option value="event">event</option><option value="fine_value">fine value</option><option value="coarse_value">coarse value</option><option value="ad_network_id">ad network</option><option value="day">day</option></select></label>
        <button type="submit" disabled=${errors.length > 0}>Simulate</button>
      </form>
      <${SimulateResult} result=${simResult} />
    </section>`}
    <section class="history" aria-labelledby="history-title">
      <h2 id="history-title">Versions</h2>
      ${versions.length ? html`<div class="table-scroll"><table>
        <thead><tr><th scope="col">Version</th><th scope="col">Effective from</th><th scope="col">Author</th><th scope="col">Note</th></tr></thead>
        <tbody>${[...versions].reverse().map((v) => html`<tr><th scope="row">${v.version}${current && current.version === v.version ? html` <span class="badge">in effect</span>` : ''}</th><td>${fmt.time(Date.parse(v.effective_from))}</td><td>${v.author}</td><td>${v.note || ''}</td></tr>`)}</tbody>
      </table></div>
      ${versions.length > 1 && html`<form class="row" onSubmit=${compareVersions}>
        <label>Compare version <select name="compare-from" value=${compare.n} onChange=${(e) => setCompare({ ...compare, n: e.target.value })}>${versions.map((v) => html`<option value=${v.version}>${v.version}</option>`)}</select></label>
        <label>with <select name="compare-to" value=${compare.m} onChange=${(e) => setCompare({ ...compare, m: e.target.value })}>${versions.map((v) => html`<option value=${v.version}>${v.version}</option>`)}</select></label>
        <button type="submit" class="secondary">Compare</button></form>
        <${ChangeList} diff=${compare.diff} />`}` : html`<p>No versions yet.</p>`}
    </section>
  </section>`;
}
