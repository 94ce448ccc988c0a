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
    if (app.me && ['token_revoked', 'invalid_token'].includes(err.code)) ended(app, 'This session was ended. Please log in again.');
  };
  app.socket.on('auth_failed', ({ reason }) => {
    if (app.me) ended(app, reason === 'token_revoked' ? 'This session was ended. Please log in again.' : 'Please log in again.');
  });
  app.logout = () => logout(app);
}

/** Called once at startup: auto-login with the device token, else the login form. */
export async function start(app) {
  const s = savedSession();
  if (s && s.uid && s.device_token) {
    try {
      const hasKey = await app.e2e.loadLocal(s.uid);
      if (!hasKey) throw new Error('no local key');
      const res = await app.api.post('/login', { identifier: s.uid, device_id: deviceId(), device_token: s.device_token });
      if (!samePem(res.public_e2e_key, app.e2e.publicKeyPem)) throw new Error('key changed on another device');
      await established(app, res);
      return;
    } catch (e) {
      if (e instanceof ApiError && e.code === 'network_error') {
        app.ui.toast('The server cannot be reached. Retrying…', { error: true });
        setTimeout(() => start(app), 3000);
        return;
      }
      localStorage.removeItem(SESSION_KEY);
      document.getElementById('login-identifier').value = s.uid;
    }
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
  const login = await app.api.post('/login', { identifier: uid, password: data.password, device_id: deviceId() });
  app.api.token = login.access_token;
  const backup = await app.e2e.backup(data.password);
  await app.api.post('/e2e/secret_key', { ciphertext: backup });
  await app.e2e.saveLocal(uid);
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
      // No backup anywhere: a new key; messages encrypted for the old one cannot be read here.
      const { publicKeyPem } = await app.e2e.generate();
      await app.api.post('/e2e/public_key', { public_e2e_key: publicKeyPem });
      await app.api.post('/e2e/secret_key', { ciphertext: await app.e2e.backup(password) });
      await app.e2e.saveLocal(uid);
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

/** New access token for the same session with the device token. Resolves true on success. */
export function refresh(app) {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    const s = savedSession();
    if (!s || !app.me) return false;
    try {
      const saved = app.api.token;
      app.api.token = null;
      let res;
      try {
        res = await app.api.post('/login', { identifier: s.uid, device_id: deviceId(), device_token: s.device_token });
      } catch (e) {
        app.api.token = saved;
        throw e;
      }
      await established(app, res);
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) ended(app, 'Please log in again.');
      else scheduleRefresh(app, 60);
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function logout(app) {
  try {
    await app.api.post('/logout', {});
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      app.ui.toast(app.ui.errorText(e), { error: true });
      return;
    }
  }
  await ended(app, 'You are logged out.');
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
