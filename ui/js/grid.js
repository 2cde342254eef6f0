// The 8x8 grid of fine values: row = high 3 bits, column = low 3 bits, so cell (r, c) is value
// 8r + c and a bit layout reads off the axes. One layout, two uses: a read-only volume heat
// grid in reports, and the schema editor's editable grid.
import { html, useEffect, useRef } from '../vendor/htm-preact-standalone.js';
import { fmt } from './util.js';

const EIGHT = [0, 1, 2, 3, 4, 5, 6, 7];
export const bits = (n, width = 3) => n.toString(2).padStart(width, '0');

/** Read-only: postbacks per fine value, intensity from the count, the count always printed. */
export function HeatGrid({ counts, caption }) {
  const max = Math.max(1, ...counts);
  const total = counts.reduce((a, b) => a + b, 0);
  return html`<div class="table-scroll"><table class="heat">
    <caption>${caption}</caption>
    <thead><tr><td class="corner"></td>${EIGHT.map((c) => html`<th scope="col"><abbr title=${'low bits ' + bits(c)}>+${c}</abbr></th>`)}</tr></thead>
    <tbody>${EIGHT.map((r) => html`<tr><th scope="row"><abbr title=${'high bits ' + bits(r)}>${r * 8}</abbr></th>
      ${EIGHT.map((c) => {
        const v = r * 8 + c;
        const n = counts[v] || 0;
        return html`<td style=${{ '--heat': (n / max).toFixed(3) }} class=${n ? '' : 'zero'}
          title=${`value ${v} (${bits(v, 6)}): ${fmt.int(n)} postbacks, ${total ? ((100 * n) / total).toFixed(1) : 0} %`}>
          <span class="v">${v}</span><span class="n">${fmt.int(n)}</span></td>`;
      })}</tr>`)}</tbody>
  </table></div>`;
}

/** Editable: each cell shows its label, events, revenue and coarse value; arrows move, shift
 *  extends a range of values, Enter or typing opens the editor for the range, paste fills it. */
export function SchemaGrid({ cells, selection, onSelect, onStartEdit, onPaste, findings, changed, volume, mode }) {
  const tableRef = useRef(null);
  const focus = selection.focus;
  useEffect(() => {
    const cell = tableRef.current && tableRef.current.querySelector(`[data-value="${focus}"]`);
    if (cell && tableRef.current.contains(document.activeElement) && document.activeElement !== cell) cell.focus();
  }, [focus]);
  const lo = Math.min(selection.anchor, selection.focus);
  const hi = Math.max(selection.anchor, selection.focus);
  const maxVolume = volume ? Math.max(1, ...volume) : 1;
  const onKeyDown = (event) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -8, ArrowDown: 8 };
    let next = null;
    if (moves[event.key] !== undefined) next = focus + moves[event.key];
    else if (event.key === 'Home') next = event.ctrlKey ? 0 : focus - (focus % 8);
    else if (event.key === 'End') next = event.ctrlKey ? 63 : focus - (focus % 8) + 7;
    if (next !== null) {
      event.preventDefault();
      next = Math.max(0, Math.min(63, next));
      onSelect(event.shiftKey ? { anchor: selection.anchor, focus: next } : { anchor: next, focus: next });
      return;
    }
    if (event.key === 'Enter' || event.key === 'F2') {
      event.preventDefault();
      onStartEdit('');
    } else if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      onStartEdit(event.key);
    } else if (event.key === 'a' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      onSelect({ anchor: 0, focus: 63 });
    }
  };
  const click = (v, event) => onSelect(event.shiftKey ? { anchor: selection.anchor, focus: v } : { anchor: v, focus: v });
  return html`<div class="table-scroll grid-wrap"><table class="schema-grid" role="grid" ref=${tableRef}
      aria-label="Fine values 0 to 63 of window 0" aria-multiselectable="true" aria-describedby="grid-help"
      onKeyDown=${onKeyDown} onPaste=${(e) => { e.preventDefault(); onPaste(e.clipboardData.getData('text')); }}>
    <thead><tr role="row"><td role="presentation" class="corner"></td>${EIGHT.map((c) => html`<th scope="col" role="columnheader"><abbr title=${'low bits ' + bits(c)}>+${c}</abbr></th>`)}</tr></thead>
    <tbody>${EIGHT.map((r) => html`<tr role="row"><th scope="row" role="rowheader"><abbr title=${'high bits ' + bits(r)}>${r * 8}</abbr></th>
      ${EIGHT.map((c) => {
        const v = r * 8 + c;
        const cell = cells[v];
        const problems = findings[v] || [];
        const error = problems.some((f) => f.severity === 'error');
        const selected = v >= lo && v <= hi;
        const n = volume ? volume[v] || 0 : null;
        const flag = volume ? (cell && n === 0 ? 'mapped, never seen' : !cell && n > 0 ? 'seen, unmapped' : '') : '';
        const classes = ['cell', cell ? 'mapped' : 'unmapped', selected ? 'selected' : '', error ? 'has-error' : problems.length ? 'has-warning' : '', changed && changed.has(v) ? 'changed' : '', mode === 'volume' ? 'volume' : ''].join(' ');
        const describe = [
          `value ${v}, bits ${bits(v, 6)}`,
          cell ? (cell.label || 'mapped') : 'unmapped',
          ...problems.map((f) => `${f.severity}: ${f.message}`),
          changed && changed.has(v) ? 'changed from the version in effect' : '',
          n !== null ? `${n} postbacks${flag ? ', ' + flag : ''}` : '',
        ].filter(Boolean).join('; ');
        return html`<td role="gridcell" tabindex=${v === focus ? 0 : -1} data-value=${v} aria-selected=${selected ? 'true' : 'false'}
            aria-invalid=${error ? 'true' : undefined} aria-label=${describe} class=${classes}
            style=${mode === 'volume' ? { '--heat': ((n || 0) / maxVolume).toFixed(3) } : undefined}
            onClick=${(e) => click(v, e)} onDblClick=${() => onStartEdit('')}>
          <span class="v">${v}${error ? html`<span class="mark" aria-hidden="true"> ⚠</span>` : problems.length ? html`<span class="mark" aria-hidden="true"> !</span>` : ''}${changed && changed.has(v) ? html`<span class="mark" aria-hidden="true"> Δ</span>` : ''}</span>
          ${mode === 'volume'
            ? html`<span class="n">${fmt.int(n)}</span>${flag ? html`<span class="flag">${flag === 'seen, unmapped' ? 'unmapped!' : 'never seen'}</span>` : ''}`
            : cell ? html`<span class="label">${cell.label || ''}</span>
              <span class="meta">${cell.eventsText}</span>
              <span class="meta">${cell.revenueText}</span>
              ${cell.coarse ? html`<span class="coarse c-${cell.coarse}">${cell.coarse}</span>` : ''}${cell.lock ? html`<span class="lock">lock</span>` : ''}` : html`<span class="meta">—</span>`}
        </td>`;
      })}</tr>`)}</tbody>
  </table></div>
  <p id="grid-help" class="help">Arrow keys move, Shift+arrows select a range of values, Enter or typing edits the selection, Ctrl+V pastes rows from a spreadsheet (label, events, revenue min, revenue max, coarse).</p>`;
}
