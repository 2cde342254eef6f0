// The console's shell: sign-in, navigation by role, and the screen for the current route.
import { html, render, useEffect, useState } from '../vendor/htm-preact-standalone.js';
import { api, apiKey } from './api.js';
import { ErrorNote, useRoute, navigate } from './util.js';
import { ReportsScreen } from './reports.js';
import { SchemaScreen } from './schema.js';
import { PostbacksScreen } from './postbacks.js';
import { DestinationsScreen } from './destinations.js';
import { QualityScreen } from './quality.js';

const SCREENS = [
  { id: 'reports', title: 'Reports', needs: 'read', view: ReportsScreen },
  { id: 'schema', title: 'Schema editor', needs: 'read', view: SchemaScreen },
  { id: 'postbacks', title: 'Postbacks', needs: 'read', view: PostbacksScreen },
  { id: 'quality', title: 'Data quality', needs: 'read', view: QualityScreen },
  { id: 'destinations', title: 'Destinations', needs: 'manage_destinations', view: DestinationsScreen },
];

function SignIn({ onSignedIn, reason }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api('/v1/session', { key: key.trim() });
      apiKey.set(key.trim());
      onSignedIn(session);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>skan-receiver</h1>
    <p>Conversion reports, schemas, postbacks and partner deliveries. Sign in with an API key
      (<code>skan-receiver keys create --role viewer --name you</code>); it is kept in this tab only.</p>
    ${reason && html`<p class="note" role="status">${reason}</p>`}
    <form onSubmit=${submit}>
      <label for="api-key">API key</label>
      <input id="api-key" name="api-key" type="password" autocomplete="off" spellcheck="false"
        placeholder="skr_…" value=${key} onInput=${(e) => setKey(e.target.value)} required />
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
    <${ErrorNote} error=${error} />
  </main>`;
}

function Shell({ session, onSignOut }) {
  const route = useRoute();
  const allowed = SCREENS.filter((s) => session.permissions.includes(s.needs));
  const screen = allowed.find((s) => s.id === route.screen) || allowed[0];
  useEffect(() => {
    document.title = `${screen ? screen.title : 'Console'} · skan-receiver`;
  }, [screen]);
  if (!screen) {
    return html`<main id="main" class="signin"><h1>Nothing to show</h1>
      <p>The key <strong>${session.name}</strong> has role <strong>${session.role}</strong>, which can only submit postbacks.</p>
      <button type="button" onClick=${onSignOut}>Sign out</button></main>`;
  }
  const View = screen.view;
  return html`
    <header class="top">
      <span class="brand">skan-receiver</span>
      <nav aria-label="Screens">
        <ul>
          ${allowed.map((s) => html`<li><a href=${'#/' + s.id} aria-current=${s.id === screen.id ? 'page' : undefined}
            onClick=${(e) => { e.preventDefault(); navigate(s.id, s.id === 'reports' || s.id === 'schema' || s.id === 'quality' ? { app_id: route.params.get('app_id') } : {}); }}>${s.title}</a></li>`)}
        </ul>
      </nav>
      <span class="who">${session.name} · <span class="role">${session.role}</span></span>
      <button type="button" class="secondary" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="main" tabindex="-1"><${View} session=${session} params=${route.params} /></main>`;
}

function App() {
  const [session, setSession] = useState(null);
  const [checking, setChecking] = useState(Boolean(apiKey.get()));
  const [reason, setReason] = useState('');
  useEffect(() => {
    if (apiKey.get()) {
      api('/v1/session').then(setSession).catch(() => apiKey.clear()).finally(() => setChecking(false));
    }
    const signedOut = (e) => {
      apiKey.clear();
      setSession(null);
      setReason('Signed out: ' + e.detail);
    };
    window.addEventListener('skan:signed-out', signedOut);
    return () => window.removeEventListener('skan:signed-out', signedOut);
  }, []);
  if (checking) return html`<p class="loading">Checking the key…</p>`;
  if (!session) return html`<${SignIn} reason=${reason} onSignedIn=${(s) => { setReason(''); setSession(s); }} />`;
  return html`<${Shell} session=${session} onSignOut=${() => { apiKey.clear(); setSession(null); setReason('Signed out.'); }} />`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
