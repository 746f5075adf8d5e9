// auth.js - signing in as a SMART app of this server: the user signs in
// (password, then a TOTP code; enrolment at the first sign-in) through the
// JSON forms of /auth, which leave a session cookie; then the app asks
// /oauth/authorize for a code (PKCE S256) and trades it at /oauth/token
// for an access token, like any third-party app. The token lives in this
// tab's sessionStorage only and ends with the session (online_access).
// Idle logoff: a warning, then sign-out after the server's session idle
// time-out (/auth/session says how long).

import { h, clear, announce } from './util.js';
import { sha256 } from './sha256.js';

export const CLIENT_ID = 'ehr-clinician';
const SCOPE = 'openid fhirUser online_access user/*.cruds';
const TOK = 'ehr.token', PKCE = 'ehr.pkce', SESS = 'ehr.session';

const store = {
  get(k) { try { return JSON.parse(sessionStorage.getItem(k)); } catch (e) { return null; } },
  set(k, v) { sessionStorage.setItem(k, JSON.stringify(v)); },
  del(k) { sessionStorage.removeItem(k); },
};

const post = (url, body, form) => fetch(url, {
  method: 'POST',
  headers: form ? { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' }
    : { 'Content-Type': 'application/json', Accept: 'application/json' },
  body: form ? new URLSearchParams(body).toString() : JSON.stringify(body || {}),
  credentials: 'same-origin', referrerPolicy: 'same-origin', cache: 'no-store',
});

const getJSON = (url) => fetch(url, {
  headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store',
});

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function challengeOf(verifier) {
  const bytes = new TextEncoder().encode(verifier);
  // crypto.subtle exists in secure contexts (https, localhost) only
  if (globalThis.crypto?.subtle) return b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
  return b64url(sha256(bytes));
}

export function session() { return store.get(SESS); }

// Send the browser to /oauth/authorize; it comes back to / with a code.
export async function authorize() {
  const verifier = randomString(48), state = randomString(16);
  store.set(PKCE, { verifier, state, back: location.hash || '#/' });
  const q = new URLSearchParams({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: `${location.origin}/`,
    scope: SCOPE, state, aud: `${location.origin}/fhir`,
    code_challenge: await challengeOf(verifier), code_challenge_method: 'S256',
  });
  location.assign(`/oauth/authorize?${q}`);
}

// Back from /oauth/authorize: trade the code. True when a token was had.
async function callback(params) {
  const saved = store.get(PKCE);
  store.del(PKCE);
  history.replaceState(null, '', `/${saved?.back || '#/'}`); // the code leaves the address bar
  if (params.get('error')) throw new Error(params.get('error_description') || params.get('error'));
  if (!saved || params.get('state') !== saved.state) throw new Error('the sign-in answer does not match this tab; sign in again');
  const r = await post('/oauth/token', {
    grant_type: 'authorization_code', code: params.get('code'), redirect_uri: `${location.origin}/`,
    client_id: CLIENT_ID, code_verifier: saved.verifier,
  }, true);
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error_description || j.error || 'the token request failed');
  keep(j);
  return true;
}

// The user's FHIR identity ("Practitioner/x") from the id_token.
function fhirUserOf(idToken) {
  try {
    const part = idToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
    const m = /([A-Za-z]+\/[A-Za-z0-9.-]+)$/.exec(claims.fhirUser || '');
    return m ? m[1] : null;
  } catch (e) {
    return null;
  }
}

function keep(j) {
  const old = store.get(TOK);
  store.set(TOK, {
    access: j.access_token, refresh: j.refresh_token || null,
    exp: Date.now() + (j.expires_in || 3600) * 1000, scope: j.scope,
    fhirUser: j.id_token ? fhirUserOf(j.id_token) : old?.fhirUser || null,
  });
}

export function fhirUser() { return store.get(TOK)?.fhirUser || null; }

let refreshing = null;
// The access token, refreshed shortly before it expires; null when signed out.
export async function accessToken() {
  const t = store.get(TOK);
  if (!t) return null;
  if (t.exp - Date.now() > 60000 || !t.refresh) return t.access;
  if (!refreshing) {
    refreshing = post('/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh, client_id: CLIENT_ID }, true)
      .then(async (r) => {
        if (!r.ok) return t.access;
        keep(await r.json());
        return store.get(TOK).access;
      }).finally(() => { refreshing = null; });
  }
  return refreshing;
}

// An /auth API with the bearer token (break-glass, access), as JSON.
export async function authApi(method, path, body) {
  const tok = await accessToken();
  const r = await fetch(path, {
    method, headers: { Authorization: `Bearer ${tok}`, Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined, referrerPolicy: 'same-origin', cache: 'no-store',
  });
  const j = await r.json().catch(() => ({}));
  return { status: r.status, ok: r.ok, json: j };
}

let signedOutHandler = () => {};
export function onSignedOut(fn) { signedOutHandler = fn; }

// A 401 from /fhir: the session or token has ended.
export function onUnauthorized() {
  if (!store.get(TOK)) return;
  store.del(TOK);
  stopIdle();
  signedOutHandler('Your session has ended. Please sign in again.');
}

// Sign out: the server ends the session and every token bound to it.
export async function signOut(message) {
  stopIdle();
  store.del(TOK);
  store.del(SESS);
  try { await post('/auth/logout', {}); } catch (e) { /* offline: the session times out anyway */ }
  signedOutHandler(message || 'You have signed out.');
}

// Where the app starts: 'ready' with a token, or the sign-in screen was shown.
export async function boot(main) {
  const params = new URLSearchParams(location.search);
  if (params.has('code') || params.has('error')) {
    try {
      await callback(params);
    } catch (e) {
      renderSignIn(main, e.message);
      return 'signin';
    }
  }
  const s = await getJSON('/auth/session').then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (s && s.state === 'ok') {
    store.set(SESS, s);
    if (store.get(TOK)) return 'ready';
    await authorize();
    return 'redirect';
  }
  store.del(TOK);
  renderSignIn(main);
  return 'signin';
}

// ---- the sign-in screens ----

function field(label, attrs) {
  const id = `f-${attrs.name}`;
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, ...attrs }));
}

function screen(main, title, ...body) {
  clear(main);
  document.getElementById('topbar').hidden = true;
  const card = h('section', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, title), ...body);
  main.append(card);
  const first = card.querySelector('input, button');
  if (first) first.focus();
  return card;
}

function errorLine() {
  return h('p', { class: 'error', role: 'alert', hidden: true });
}

function showError(p, msg) {
  p.textContent = msg;
  p.hidden = !msg;
}

export function renderSignIn(main, message) {
  const err = errorLine();
  const form = h('form', { class: 'stack', novalidate: true },
    message ? h('p', { class: 'notice', role: 'status' }, message) : null,
    field('User name', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' }),
    field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    err,
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = form.username.value.trim(), password = form.password.value;
    if (!username || !password) return showError(err, 'Type your user name and password.');
    showError(err, '');
    form.querySelector('button').disabled = true;
    try {
      const r = await post('/auth/login', { username, password });
      const j = await r.json().catch(() => ({}));
      if (!r.ok) {
        form.password.value = '';
        form.password.focus();
        return showError(err, r.status === 401 ? 'Invalid user name or password.' : j.error || 'Sign-in failed.');
      }
      if (j.status === 'mfa_required') return renderCode(main);
      if (j.status === 'mfa_enrollment_required') return renderEnroll(main);
      await authorize();
    } catch (e) {
      showError(err, 'The server cannot be reached. Try again.');
    } finally {
      form.querySelector('button').disabled = false;
    }
  });
  screen(main, 'Sign in to ehr', form);
}

function renderCode(main) {
  const err = errorLine();
  const form = h('form', { class: 'stack', novalidate: true },
    h('p', {}, 'Type the 6-digit code from your authenticator app (or a recovery code).'),
    field('Code', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true }),
    err, h('button', { type: 'submit' }, 'Continue'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await post('/auth/mfa', { code: form.code.value.trim() }).catch(() => null);
    if (r && r.ok) return authorize();
    form.code.value = '';
    form.code.focus();
    if (r && r.status === 401) {
      const s = await getJSON('/auth/session').then((x) => (x.ok ? x.json() : null)).catch(() => null);
      if (!s) return renderSignIn(main, 'Too many wrong codes, or the sign-in has expired. Sign in again.');
    }
    showError(err, r ? 'Invalid code.' : 'The server cannot be reached. Try again.');
  });
  screen(main, 'Second step', form);
}

async function renderEnroll(main) {
  const r = await getJSON('/auth/mfa/enroll').catch(() => null);
  const j = r && r.ok ? await r.json() : null;
  if (!j) return renderSignIn(main, 'Setting up two-step sign-in failed; sign in again.');
  const err = errorLine();
  const img = h('img', { class: 'qr', alt: 'QR code for your authenticator app', width: 200, height: 200,
    src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(j.qr_svg)}` });
  const form = h('form', { class: 'stack', novalidate: true },
    h('p', {}, 'Your role signs in in two steps. Scan this code with an authenticator app, then type the code it shows.'),
    img,
    h('p', {}, 'Or enter this key: ', h('code', { id: 'totp-secret' }, j.secret)),
    field('Code', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true }),
    err, h('button', { type: 'submit' }, 'Confirm'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const c = await post('/auth/mfa/enroll', { code: form.code.value.trim() }).catch(() => null);
    const cj = c && c.ok ? await c.json() : null;
    if (!cj) {
      form.code.value = '';
      return showError(err, 'Invalid code. Check the time on your phone and try the next code.');
    }
    const go = h('button', { type: 'button', onclick: () => authorize() }, 'Continue');
    screen(main, 'Two-step sign-in is on',
      h('p', {}, 'Keep these recovery codes somewhere safe. Each works once if you lose your phone.'),
      h('ul', { class: 'codes' }, cj.recovery_codes.map((x) => h('li', {}, h('code', {}, x)))), go);
    go.focus();
  });
  screen(main, 'Set up two-step sign-in', form);
}

// ---- idle logoff ----

let idle = null;
const ACTIVITY = ['keydown', 'pointerdown', 'wheel', 'touchstart'];

function onActivity() {
  if (!idle || idle.warned) return;
  idle.last = Date.now();
  // keep the server's session as fresh as ours when no API call does it
  if (Date.now() - idle.touched > idle.throttle * 1000) {
    idle.touched = Date.now();
    getJSON('/auth/session').then((r) => { if (r.status === 401) onUnauthorized(); }).catch(() => {});
  }
}

// Start the idle clock for a server session of timeoutSeconds idle time.
// The server notes a session's use at most every step = min(S/4, 30 s),
// and we tell it about activity at most every step/2, so its clock may run
// up to 1.5 steps ahead of ours: we sign out that much earlier, and warn
// min(60 s, S/4) before, so that "Stay signed in" always finds the session
// alive.
export function startIdle(timeoutSeconds) {
  stopIdle();
  const S = Math.max(8, timeoutSeconds || 900);
  const step = Math.min(S / 4, 30);
  const timeout = S - 1.5 * step;
  const warn = Math.min(60, S / 4);
  idle = { timeout, warn, throttle: step / 2, last: Date.now(), touched: Date.now(), warned: false };
  for (const e of ACTIVITY) window.addEventListener(e, onActivity, { capture: true, passive: true });
  const dlg = document.getElementById('idle'), left = document.getElementById('idle-left');
  const stay = document.getElementById('idle-stay');
  stay.onclick = async () => {
    idle.warned = false;
    idle.touched = 0;
    dlg.close();
    onActivity();
  };
  idle.timer = setInterval(() => {
    const quiet = (Date.now() - idle.last) / 1000;
    if (quiet >= timeout) {
      dlg.close();
      signOut(`You were signed out after ${fmtSpan(Math.round(timeout))} without activity. Any note you were writing is kept as a draft.`);
    } else if (quiet >= timeout - warn) {
      left.textContent = String(Math.ceil(timeout - quiet));
      if (!idle.warned) {
        idle.warned = true;
        dlg.showModal();
        announce('You will be signed out soon because there was no activity.');
      }
    }
  }, 500);
}

export function stopIdle() {
  if (!idle) return;
  clearInterval(idle.timer);
  for (const e of ACTIVITY) window.removeEventListener(e, onActivity, { capture: true });
  const dlg = document.getElementById('idle');
  if (dlg?.open) dlg.close();
  idle = null;
}

function fmtSpan(s) {
  return s >= 120 ? `${Math.round(s / 60)} minutes` : `${s} seconds`;
}
