// Web Push (docs/protocol.md §4.1 `/vapid_public_key`, §4.9 `/register_push`).
//
// A "Notifications" setting registers the service worker (sw.js, scope = the client's base URL,
// /app/), subscribes with the browser's push service using the server's VAPID key, and registers
// the subscription for this device. Pushes are content-free: the worker shows "New message",
// "Incoming call" or "Contact request" and nothing else.
//
// Test hooks: `#setting-notifications` (the checkbox) and `#push-status[data-push-state]` with
// `off | working | on | error | unsupported`.

const PUSH_KEY = 'melo.push';
const SUBSCRIBE_TIMEOUT_MS = 15000;

let app = null;

export function init(a) {
  app = a;
  renderSettings();
  app.push = { enable, disable, state: () => currentState };
  // Keep this device's registration current (a new login is a new device for the server).
  if (typeof app.on === 'function') {
    app.on('session', () => {
      if (wanted() && supported() && Notification.permission === 'granted') enable({ quiet: true });
    });
    // The setting belongs to the account that turned it on: a logout drops the subscription, so
    // the next account on this browser decides for itself.
    app.on('logout', () => {
      if (wanted()) disable();
    });
  }
}

let currentState = 'off';

function supported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function wanted() {
  try {
    return localStorage.getItem(PUSH_KEY) === '1';
  } catch {
    return false;
  }
}

function setWanted(on) {
  try {
    if (on) localStorage.setItem(PUSH_KEY, '1');
    else localStorage.removeItem(PUSH_KEY);
  } catch {
    // Storage refused: the setting lasts for this page only.
  }
}

/** Turns notifications on for this device. Never throws; the outcome is shown in the setting. */
export async function enable({ quiet = false } = {}) {
  if (!supported()) {
    show('unsupported', 'This browser does not support push notifications.');
    return false;
  }
  show('working', quiet ? 'Checking notifications…' : 'Turning notifications on…');
  let step = 'permission';
  try {
    const perm = await Notification.requestPermission();
    if (perm !== 'granted') {
      setWanted(false);
      show('error', 'Notifications are blocked for this site. Allow them in the browser settings.');
      return false;
    }
    step = 'service worker';
    const base = new URL('./', document.baseURI);
    await navigator.serviceWorker.register(new URL('sw.js', base).href, { scope: base.pathname });
    const reg = await navigator.serviceWorker.ready;
    step = 'server key';
    const r = await app.api.request('GET', '/vapid_public_key');
    const key = r && r.vapid_public_key;
    if (!key) throw new Error('the server has no push key');
    step = 'push service';
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameKey(sub, key)) {
      await sub.unsubscribe();
      sub = null;
    }
    if (!sub) {
      // Without a reachable push service (no network, a browser without one) this never
      // settles: give up after a while.
      sub = await withTimeout(
        reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlToBytes(key) }),
        SUBSCRIBE_TIMEOUT_MS,
        'no answer',
      );
    }
    step = 'registration';
    await app.api.request('POST', '/register_push', {
      body: { platform: 'web', subscription: sub.toJSON() },
    });
    setWanted(true);
    show('on', 'Notifications are on for this device.');
    return true;
  } catch (e) {
    show('error', explain(step, e));
    return false;
  }
}

/** Turns notifications off for this device (the push service then refuses the server's pushes,
 * and the server forgets the registration). */
export async function disable() {
  setWanted(false);
  show('working', 'Turning notifications off…');
  try {
    if (supported()) {
      const reg = await navigator.serviceWorker.getRegistration(new URL('./', document.baseURI).href);
      const sub = reg && (await reg.pushManager.getSubscription());
      if (sub) await sub.unsubscribe();
    }
    show('off', 'Notifications are off.');
    const box = document.getElementById('setting-notifications');
    if (box) box.checked = false;
  } catch (e) {
    show('error', `Could not turn notifications off: ${(e && e.message) || e}`);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function explain(step, e) {
  const msg = (e && e.message) || String(e);
  switch (step) {
    case 'service worker':
      return `Could not install the notification worker: ${msg}`;
    case 'server key':
      return `Could not get the server's push key: ${msg}`;
    case 'push service':
      return `The browser's push service is not reachable, so notifications cannot be turned on (${msg}).`;
    case 'registration':
      return `The server refused this device's push registration: ${msg}`;
    default:
      return `Could not turn notifications on: ${msg}`;
  }
}

function sameKey(sub, key) {
  const k = sub.options && sub.options.applicationServerKey;
  if (!k) return true;
  const a = new Uint8Array(k);
  const b = b64urlToBytes(key);
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function b64urlToBytes(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Settings UI

function renderSettings() {
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.id = 'setting-notifications';
  box.checked = wanted();
  const label = document.createElement('label');
  label.htmlFor = box.id;
  label.textContent = 'Notifications on this device';
  const status = document.createElement('p');
  status.id = 'push-status';
  status.className = 'push-status';
  status.setAttribute('role', 'status');
  status.setAttribute('aria-live', 'polite');
  box.setAttribute('aria-describedby', status.id);
  const row = document.createElement('div');
  row.className = 'setting';
  row.append(box, label);
  const title = document.createElement('h3');
  title.textContent = 'Notifications';
  const note = document.createElement('p');
  note.className = 'muted';
  note.textContent =
    'Shows "New message", "Incoming call" or "Contact request" while Melo is closed — never who wrote or what.';
  const section = document.createElement('div');
  section.className = 'card setting-push';
  section.append(title, row, note, status);
  if (typeof app.addSettingsSection === 'function') app.addSettingsSection(section);
  else {
    const host = document.getElementById('settings-features');
    if (host) host.append(section);
  }
  box.addEventListener('change', async () => {
    box.disabled = true;
    const ok = box.checked ? await enable() : (await disable(), false);
    box.checked = ok;
    box.disabled = false;
  });
  if (!supported()) show('unsupported', 'This browser does not support push notifications.');
  else show(wanted() ? 'on' : 'off', wanted() ? 'Notifications are on for this device.' : '');
}

function show(state, text) {
  currentState = state;
  const s = document.getElementById('push-status');
  if (!s) return;
  s.setAttribute('data-push-state', state);
  s.textContent = text;
  const box = document.getElementById('setting-notifications');
  if (box && (state === 'error' || state === 'unsupported')) box.checked = false;
}
