// Small shared pieces: the hash route, formatting, debouncing, downloads.
import { html, useEffect, useRef, useState } from '../vendor/htm-preact-standalone.js';

/** The route in the hash: `#/reports?app_id=1&from=...` -> { screen, params }. */
export function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [screen, search = ''] = hash.split('?');
  return { screen: screen || 'reports', params: new URLSearchParams(search) };
}

/** Go to a screen with parameters (replacing the history entry when `replace`). */
export function navigate(screen, params = {}, replace = false) {
  const search = params instanceof URLSearchParams ? params.toString() : new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''),
  ).toString();
  const target = '#/' + screen + (search ? '?' + search : '');
  if (target === location.hash) return;
  if (replace) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute() {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    window.addEventListener('hashchange', update);
    window.addEventListener('popstate', update);
    return () => {
      window.removeEventListener('hashchange', update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

export const fmt = {
  int: (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US')),
  pct: (x) => (x === null || x === undefined ? '–' : (x * 100).toFixed(1) + ' %'),
  money: (x, currency) => (x === null || x === undefined ? '∞' : Number(x).toLocaleString('en-US', { maximumFractionDigits: 2 }) + (currency ? ' ' + currency : '')),
  time: (ms) => (ms === null || ms === undefined ? '–' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')),
  delta: (a, b) => {
    if (a === null || b === null || a === undefined || b === undefined) return '';
    const d = b - a;
    if (d === 0) return '±0';
    return (d > 0 ? '+' : '') + Number(d).toLocaleString('en-US', { maximumFractionDigits: 2 });
  },
};

export function range(revenue, currency) {
  if (!revenue) return '';
  const max = revenue.max === undefined || revenue.max === null ? '∞' : fmt.money(revenue.max);
  return `${fmt.money(revenue.min)}–${max}${currency ? ' ' + currency : ''}`;
}

export function eventsText(events) {
  return (events || []).map((e) => {
    if (e.min_count === undefined && e.max_count === undefined) return e.name;
    if (e.min_count !== undefined && e.min_count === e.max_count) return `${e.name}×${e.min_count}`;
    return `${e.name}×${e.min_count ?? 1}–${e.max_count ?? '∞'}`;
  }).join(' + ');
}

/** Days as YYYY-MM-DD in UTC. */
export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function daysAgo(n, from = new Date()) {
  return isoDay(new Date(from.getTime() - n * 86400000));
}

/** Run `fn` after `ms` of quiet; the latest call wins. */
export function useDebounced(value, ms) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

/** Save text as a file through a temporary link. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    return false;
  }
}

/** An error answer shown where it happened, with the field it names. */
export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<div class="note error" role="alert">
    <strong>${error.code || 'error'}</strong>: ${error.message}${error.field ? html` (field <code>${error.field}</code>)` : ''}
  </div>`;
}

/** A button that copies text and says so in a live region. */
export function CopyButton({ text, label }) {
  const [said, setSaid] = useState('');
  return html`<button type="button" class="secondary" onClick=${async () => setSaid((await copyText(text)) ? 'Copied' : 'Select the text and copy it')}>${label}</button><span class="said" role="status">${said}</span>`;
}

/** Focus the element once it appears (for headings after navigation). */
export function useFocusOnChange(dep) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current) ref.current.focus();
  }, [dep]);
  return ref;
}
