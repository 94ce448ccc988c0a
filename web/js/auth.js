// Registration, login (password or device token), key set-up, token refresh, logout.
// device_id: 16 hex chars, one per browser profile (localStorage). The device token for auto-login
// is kept in localStorage with the uid; the private E2E key is in IndexedDB (non-extractable).

import { ApiError } from './api.js';

const DEVICE_KEY = 'melo.device_id';
const SESSION_KEY = 'melo.session';

export function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id || !/^[0-9a-f]{16}$/.test(id)) {
    const b = crypto.getRandomValues(new Uint8Array(8));
    id = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function savedSession() {
  try { return JSON.parse(localStorage.getItem(SESSION_KEY) || 'null'); } catch { return null; }
}

function saveSession(uid, deviceToken) {
  localStorage.setItem(SESSION_KEY, JSON.stringify({ uid, device_token: deviceToken }));
}

const samePem = (a, b) => (a || '').replace(/\s+/g, '') === (b || '').replace(/\s+/g, '');

let refreshTimer = null;
let refreshing = null;

function showError(id, err, app) {
  const el = document.getElementById(id);
  el.textContent = err ? app.ui.errorText(err) : '';
  el.hidden = !err;
}

export function setup(app) {
  const loginForm = document.getElementById('login-form');
  const regForm = document.getElementById('register-form');
  const tabLogin = document.getElementById('tab-login');
  const tabReg = document.getElementById('tab-register');
  const select = (reg) => {
    tabLogin.setAttribute('aria-selected', String(!reg));
    tabReg.setAttribute('aria-selected', String(reg));
    loginForm.hidden = reg;
    regForm.hidden = !reg;
    (reg ? document.getElementById('reg-phone') : document.getElementById('login-identifier')).focus();
  };
  tabLogin.addEventListener('click', () => select(false));
  tabReg.addEventListener('click', () => select(true));

  loginForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError('login-error', null, app);
    const identifier = loginForm.identifier.value.trim();
    const password = loginForm.password.value;
    if (!identifier || !password) {
      showError('login-error', new Error('Enter your phone or user ID and your password.'), app);
      return;
    }
    await app.ui.busy(document.getElementById('login-submit'), async () => {
      try {
        await passwordLogin(app, identifier, password);
        loginForm.reset();
      } catch (e) {
        showError('login-error', e, app);
      }
    });
  });

  regForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError('register-error', null, app);
    const f = regForm;
    const data = {
      phone: f.phone.value.trim(), name: f.name.value.trim(), nickname: f.nickname.value.trim(), password: f.password.value,
    };
    if (!data.phone || !data.name || !data.nickname) {
      showError('register-error', new Error('Phone, name and nickname are required.'), app);
      return;
    }
    if (data.password.length < 8) {
      showError('register-error', new Error('The password needs at least 8 characters.'), app);
      return;
    }
    await app.ui.busy(document.getElementById('register-submit'), async () => {
      try {
        await register(app, data);
        f.reset();
      } catch (e) {
        showError('register-error', e, app);
      }
    });
  });

  app.api.onUnauthorized = (err) => {
    // Only a revoked session ends it; an invalid token is checked with a device-token login first.
    if (!app.me) return;
    if (err.code === 'token_revoked') ended(app, 'This session was ended. Please log in again.');
    else if (err.code === 'invalid_token') refresh(app);
  };
  app.socket.on('auth_failed', ({ reason }) => {
    if (app.me) ended(app, reason === 'token_revoked' ? 'This session was ended. Please log in again.' : 'Please log in again.');
  });
  app.logout = () => logout(app);
}

/** A definite "this credential is no good" answer (not a temporary failure). */
function definite401(e) {
  return e instanceof ApiError && e.status === 401 && ['invalid_credentials', 'token_revoked'].includes(e.code);
}

/** A failure worth retrying later with the same credentials (network, timeout, 429, 5xx). */
function temporary(e) {
  return e instanceof ApiError && (e.status === 0 || e.status === 429 || e.status >= 500);
}

/**
 * Device-token login. Tabs of one browser profile share the device token, and every login rotates
 * it: the login is serialized across tabs (navigator.locks) and the token is re-read inside the
 * lock, so a tab that waited uses the token the other tab just saved. The stored session is cleared
 * only when the server definitely refused the very token that was sent.
 */
async function deviceLogin(app, uid) {
  const run = async () => {
    const s = savedSession();
    if (!s || s.uid !== uid || !s.device_token) {
      throw new ApiError(401, 'invalid_credentials', 'This device is no longer logged in.');
    }
    try {
      const res = await app.api.request('POST', '/login', {
        body: { identifier: s.uid, device_id: deviceId(), device_token: s.device_token }, auth: false,
      });
      saveSession(res.unique_id, res.device_token);
      return res;
    } catch (e) {
      if (definite401(e) && savedSession()?.device_token === s.device_token) localStorage.removeItem(SESSION_KEY);
      throw e;
    }
  };
  if (navigator.locks?.request) return navigator.locks.request(`melo-device-login-${deviceId()}`, run);
  return run();
}

let startAttempt = 0;

/** Called once at startup: auto-login with the device token, else the login form. */
export async function start(app) {
  const s = savedSession();
  if (s && s.uid && s.device_token) {
    let hasKey = false;
    try { hasKey = await app.e2e.loadLocal(s.uid); } catch { hasKey = false; }
    if (hasKey) {
      try {
        const res = await deviceLogin(app, s.uid);
        if (!samePem(res.public_e2e_key, app.e2e.publicKeyPem)) {
          // The account's key was replaced on another device: the password loads the new one.
          localStorage.removeItem(SESSION_KEY);
          showAuth(app, s.uid);
          app.ui.toast('Your account has a new encryption key. Log in with your password to load it.', { error: true });
          return;
        }
        startAttempt = 0;
        await established(app, res);
        return;
      } catch (e) {
        if (temporary(e)) {
          startAttempt += 1;
          const wait = e.retryAfter ? e.retryAfter * 1000
            : Math.min(30000, 1000 * 2 ** Math.min(startAttempt, 5)) * (0.75 + Math.random() * 0.5);
          const why = e.status === 429 ? 'Rate limited' : app.ui.errorText(e);
          app.ui.toast(`${why} — logging in again in ${Math.ceil(wait / 1000)} s…`, { error: true, timeout: wait + 1000 });
          setTimeout(() => start(app), wait);
          return;
        }
        // Refused (the stored session is cleared only for a definite 401) or unexpected: log in again.
      }
    } else {
      localStorage.removeItem(SESSION_KEY);
    }
    document.getElementById('login-identifier').value = s.uid;
  }
  showAuth(app);
}

function showAuth(app, identifier) {
  document.body.dataset.auth = 'out';
  document.getElementById('tab-login').setAttribute('aria-selected', 'true');
  document.getElementById('tab-register').setAttribute('aria-selected', 'false');
  document.getElementById('login-form').hidden = false;
  document.getElementById('register-form').hidden = true;
  if (identifier) document.getElementById('login-identifier').value = identifier;
  app.ui.showView('auth');
}

async function register(app, data) {
  const { publicKeyPem } = await app.e2e.generate();
  const res = await app.api.post('/register', { ...data, device_id: deviceId(), public_e2e_key: publicKeyPem });
  const uid = res.unique_id;
  // The account exists with this key: keep the key on this device before anything else can fail.
  await app.e2e.saveLocal(uid);
  // Follow-up steps wait out a rate limit (a refused request was not processed, so a retry is safe).
  const login = await app.api.request('POST', '/login', {
    body: { identifier: uid, password: data.password, device_id: deviceId() }, retry: true,
  });
  app.api.token = login.access_token;
  const backup = await app.e2e.backup(data.password);
  await app.api.request('POST', '/e2e/secret_key', { body: { ciphertext: backup }, retry: true });
  await established(app, login);
  app.ui.toast(`Account created. Your user ID is ${uid}.`);
}

async function passwordLogin(app, identifier, password) {
  const res = await app.api.post('/login', { identifier, password, device_id: deviceId() });
  const uid = res.unique_id;
  app.api.token = res.access_token;
  let ok = (await app.e2e.loadLocal(uid)) && samePem(app.e2e.publicKeyPem, res.public_e2e_key);
  if (!ok) {
    const backup = await app.api.get('/e2e/secret_key');
    if (backup && backup.ciphertext) {
      await app.e2e.restore(backup.ciphertext, password);
      app.e2e.uid = uid;
      ok = samePem(app.e2e.publicKeyPem, res.public_e2e_key);
      if (!ok) app.ui.toast('Your key backup does not match your current public key.', { error: true });
      await app.e2e.saveLocal(uid);
    } else {
      // No backup: only the user decides to replace the account's key (a server answering
      // {"ciphertext": null} must not be able to force a new key silently).
      const create = await app.ui.confirm({
        title: 'No key backup found',
        text: 'No key backup found. Create a new key? Messages encrypted to your old key will be unreadable.',
        ok: 'Create a new key',
        cancel: 'Cancel',
      });
      if (!create) {
        try { await app.api.post('/logout', {}); } catch { /* the session expires on its own */ }
        app.api.token = null;
        throw new Error('Login cancelled: this device has no encryption key for the account.');
      }
      const { publicKeyPem } = await app.e2e.generate();
      await app.e2e.saveLocal(uid);
      await app.api.request('POST', '/e2e/public_key', { body: { public_e2e_key: publicKeyPem }, retry: true });
      await app.api.request('POST', '/e2e/secret_key', { body: { ciphertext: await app.e2e.backup(password) }, retry: true });
      res.public_e2e_key = publicKeyPem;
      app.ui.toast('A new encryption key was created for your account.');
    }
  }
  await established(app, res);
}

async function established(app, res) {
  app.api.token = res.access_token;
  app.api.csrf = res.csrf_token;
  saveSession(res.unique_id, res.device_token);
  const first = !app.me || app.me.uid !== res.unique_id;
  if (app.me && !first && app.me.sessionId !== res.session_id) {
    // A different session of the same user: its device queue and seq numbers start afresh.
    app.socket.close();
    app.socket.reset();
    app.socket.connect();
  }
  app.me = {
    uid: res.unique_id, name: res.name, nickname: res.nickname, phone: res.phone, deviceId: res.device_id || deviceId(),
    sessionId: res.session_id, publicKeyPem: app.e2e.publicKeyPem,
  };
  app.e2e.uid = res.unique_id;
  scheduleRefresh(app, res.expires_in);
  if (!first) return;
  document.body.dataset.auth = 'in';
  const me = document.getElementById('me');
  me.dataset.uid = app.me.uid;
  me.textContent = `${app.me.nickname} · ${app.me.uid}`;
  document.getElementById('welcome-uid').textContent = app.me.uid;
  app.socket.reset();
  app.socket.connect();
  app.ui.showView('empty');
  app.emit('session', app.me);
}

function scheduleRefresh(app, expiresIn) {
  clearTimeout(refreshTimer);
  const secs = Math.max(30, Math.floor((Number(expiresIn) || 7200) * 0.8));
  refreshTimer = setTimeout(() => refresh(app), secs * 1000);
}

/**
 * New access token for the same session with the device token. Resolves true on success, 'ended'
 * when the server definitely refused the device token (the session is over), false on a temporary
 * failure (retried later; the session and the keys are kept).
 */
export function refresh(app) {
  if (refreshing) return refreshing;
  // Checked before the promise exists: an early return inside it would run its `finally` before
  // `refreshing` is assigned and leave a settled promise there for good.
  if (!app.me) return Promise.resolve(false);
  const uid = app.me.uid;
  refreshing = (async () => {
    try {
      const res = await deviceLogin(app, uid);
      if (!app.me || app.me.uid !== uid) return false;
      await established(app, res);
      return true;
    } catch (e) {
      if (definite401(e)) {
        await ended(app, 'Please log in again.');
        return 'ended';
      }
      if (app.me?.uid === uid) {
        scheduleRefresh(app, e instanceof ApiError && e.retryAfter ? e.retryAfter / 0.8 : 60);
      }
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function logout(app) {
  // The local keys, cache and device token go whatever the server answers: a user leaving a
  // shared computer must not find them still there because the request was rate-limited or the
  // network was down. The server's session ends with the request (it waits out a 429), or expires.
  const request = app.api.post('/logout', {}, { retry: true, token: app.api.token });
  await ended(app, 'You are logged out.');
  try {
    await request;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      app.ui.toast(`The server did not confirm the logout: ${app.ui.errorText(e)}. Revoke this session from another device if needed.`, { error: true });
    }
  }
}

async function ended(app, message) {
  if (!app.me) return;
  const uid = app.me.uid;
  clearTimeout(refreshTimer);
  app.socket.close();
  app.socket.reset();
  app.me = null;
  app.api.token = null;
  app.api.csrf = null;
  localStorage.removeItem(SESSION_KEY);
  try {
    await app.e2e.forgetLocal(uid);
    await app.store.clearUserData();
  } catch (e) {
    console.warn('local clean-up failed', e);
  }
  app.contacts.clear();
  app.emit('logout');
  showAuth(app, uid);
  if (message) app.ui.toast(message);
}
