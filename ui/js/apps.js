// Choosing an app: the apps the receiver knows, or any App Store ID typed in.
import { html, useEffect, useState } from '../vendor/htm-preact-standalone.js';
import { api } from './api.js';

let known = null;

export function useApps() {
  const [apps, setApps] = useState(known || []);
  useEffect(() => {
    if (known) return;
    api('/v1/apps').then((list) => {
      known = list;
      setApps(list);
    }).catch(() => setApps([]));
  }, []);
  return apps;
}

export function AppPicker({ id, value, onChange }) {
  const apps = useApps();
  const listId = id + '-known';
  return html`<span class="app-picker">
    <input id=${id} name="app_id" inputmode="numeric" pattern="[0-9]+" list=${listId} value=${value || ''}
      placeholder="App Store ID" required onInput=${(e) => onChange(e.target.value.trim())} />
    <datalist id=${listId}>
      ${apps.map((a) => html`<option value=${a.app_id}>${a.app_id}${a.last_arrival_day ? ' · last postback ' + a.last_arrival_day : ''}${a.schema_versions ? ' · ' + a.schema_versions + ' schema versions' : ''}</option>`)}
    </datalist>
  </span>`;
}
