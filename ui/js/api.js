// The console's only door to the server: the public JSON API, with the API key kept in
// sessionStorage (never in a URL, gone when the tab closes).

const KEY = 'skan-receiver.api-key';

export const apiKey = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An error answer of the API: `{"error": {"code", "message", "field"}}` plus its status. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || 'http_' + status;
    this.field = error.field || null;
    this.body = body;
  }
}

/** Call the API. `body` is sent as JSON; `text: true` returns the body as text. */
export async function api(path, { method = 'GET', body, text = false, key } = {}) {
  const headers = { Accept: text ? 'text/csv, */*' : 'application/json' };
  const secret = key || apiKey.get();
  if (secret) headers.Authorization = 'Bearer ' + secret;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, { error: { code: 'network', message: 'the server cannot be reached: ' + e.message } });
  }
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (_) {
      parsed = null;
    }
    const error = new ApiError(response.status, parsed);
    if (response.status === 401 && !key) {
      window.dispatchEvent(new CustomEvent('skan:signed-out', { detail: error.message }));
    }
    throw error;
  }
  if (text) return response.text();
  if (response.status === 204) return null;
  return response.json();
}

/** A query string from an object; arrays repeat the key, empty values are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) {
      if (value.length) search.set(name, value.join(','));
    } else {
      search.set(name, String(value));
    }
  }
  return search.toString();
}
