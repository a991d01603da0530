// Every call to the server goes through call(): it sends the bearer token
// kept for this tab, and on a 401 asks for the token and retries.

const tokenKey = 'mantisdb.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let pendingToken = null; // a Promise while the token dialog is open

export function hasToken() {
  return sessionStorage.getItem(tokenKey) !== null;
}

export function forgetToken() {
  sessionStorage.removeItem(tokenKey);
}

// askToken opens the token dialog, once however many calls are waiting,
// and resolves when a token has been entered.
function askToken(reason) {
  const dialog = document.getElementById('auth');
  const message = document.getElementById('auth-message');
  message.textContent = reason;
  if (pendingToken) return pendingToken;
  pendingToken = new Promise((resolve) => {
    const form = document.getElementById('auth-form');
    const input = document.getElementById('auth-token');
    dialog.hidden = false;
    document.body.classList.add('locked');
    input.value = '';
    input.focus();
    form.onsubmit = (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (token === '') {
        message.textContent = 'Enter the token the server was started with (--auth-token).';
        return;
      }
      sessionStorage.setItem(tokenKey, token);
      dialog.hidden = true;
      document.body.classList.remove('locked');
      pendingToken = null;
      resolve();
    };
  });
  return pendingToken;
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    if (body && body.error) return new ApiError(resp.status, body.error.code, body.error.message);
  } catch {
    // Not JSON: fall through to the status line.
  }
  return new ApiError(resp.status, 'http_' + resp.status, `${resp.status} ${resp.statusText}`);
}

// call sends one request and answers its JSON body, or throws ApiError.
export async function call(method, path, body) {
  for (;;) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(tokenKey);
    if (token !== null) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401) {
      const err = await errorOf(resp);
      forgetToken();
      await askToken(token === null ? 'This server requires a token.' : `The server refused the token: ${err.message}.`);
      continue;
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp.json();
  }
}
