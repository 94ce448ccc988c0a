// Melo web client — bootstrap and the shared `app` object.
//
// MODULE CONTRACT (all modules are plain ES modules, no build step; CSP forbids inline code/styles):
//   Feature modules (web/js/chats.js — groups/channels, web/js/calls.js — calls, web/js/push.js —
//   Web Push) export `async function init(app)`. app.js imports them and calls each init(app) ONCE at
//   startup, before anyone is logged in; a failing init is logged and does not stop the others.
//   They subscribe to what they need:
//     app.on('session', (me) => …)   logged in (new login, or auto-login after reload); the socket is connecting
//     app.on('logout', () => …)      logged out / session revoked: drop your state and UI
//     app.on('contacts', (map) => …) the accepted contacts changed (app.contacts)
//     app.on('presence', ({uid, status}) => …)   status: 'online' | 'away' | 'offline'
//     app.on('message', ({conv, message}) => …)  a new message was stored (conv key: 'dm:<uid>' | 'chat:<id>')
//     app.on('conversation', (entry) => …)       a conversation was opened (entry.key, kind, uid | chatId, …)
//     app.on('resync', ({reason}) => …)          the device's queue lost entries (`gap`): reload what you
//                                                show from the server (contacts.js reloads contacts and
//                                                requests; a chat list should reload too)
//     app.socket.on('<frame type>', fn)  raw server frames (call frames, chat_member, …); durable frames
//                                        are acked by socket.js after all handlers have run
//   What `app` offers:
//     app.api (Api, api.js), app.socket (Socket, socket.js), app.e2e (E2E, e2e.js), app.store (store.js),
//     app.ui (Ui, ui.js: toast/showView/registerView/busy/errorText), app.h (DOM builder),
//     app.me = {uid, name, nickname, phone, deviceId, sessionId, publicKeyPem} or null,
//     app.contacts: Map uid -> {uid, nickname, publicKeyPem, presence}   (accepted contacts only),
//     app.openConversation({kind:'dm', uid} | {kind:'chat', chatId, title, channel, role}),
//       where `channel` is true for channels and `role` is 'owner'|'admin'|'member'
//       (members of a channel get a read-only view); the chat conversation fetches
//       GET /chats/members for the recipients' keys unless the descriptor has
//       `recipients: async () => [{uid, publicKeyPem}]`;
//     app.conversations.upsert({key:'chat:<id>', kind:'chat', chatId, title, channel, role, lastTs, preview})
//       / .remove(key): entries of the sidebar list (DMs are added by the core);
//     app.addSidebarAction(button) / app.addHeaderAction(button) / app.addSettingsSection(el) /
//       app.addConversationAction(fn(desc) -> Element|null)  (e.g. the call button for a DM);
//     app.callRoot = #call-root (the calls UI renders there);
//     app.nameOf(uid) -> a contact's nickname (or the uid); app.logout();
//     app.conversations.get(key) / .list().
//   Core modules: auth.js (register/login/refresh/logout), contacts.js, settings.js, and the
//   conversation modules conversation.js (view, history, cache), conv-list.js (sidebar),
//   conv-events.js (server frames), message-view.js (rendering), composer.js (sending, editing),
//   conv-state.js (their shared state); keypins.js (contacts' keys pinned on first use, fingerprints);
//   store.js (IndexedDB), ui.js (DOM helpers).
//   DOM contract (tests rely on it): header#header, nav#sidebar, main#main with
//   <section data-view="…"> views, #call-root, #toast; messages `.message[data-message-id][data-status]`,
//   contacts `[data-uid]`.

import { Api } from './api.js';
import { Socket } from './socket.js';
import { E2E } from './e2e.js';
import { openStore } from './store.js';
import { Ui, h } from './ui.js';
import * as auth from './auth.js';
import * as contacts from './contacts.js';
import * as conversation from './conversation.js';
import * as settings from './settings.js';
import * as keypins from './keypins.js';
import * as chats from './chats.js';
import * as calls from './calls.js';
import * as push from './push.js';

// Every uncaught error, unhandled rejection and failed event/frame handler is recorded here
// (window.__melo.errors; the newest MAX_ERRORS) and logged with console.warn.
const MAX_ERRORS = 5000;
const errors = [];
function recordError(where, e) {
  errors.push(`${where}: ${e?.stack || e?.message || String(e)}`);
  if (errors.length > MAX_ERRORS) errors.splice(0, errors.length - MAX_ERRORS);
  console.warn(where, e);
}
window.addEventListener('error', (e) => { recordError('uncaught error', e.error || e.message); });
window.addEventListener('unhandledrejection', (e) => {
  recordError('unhandled rejection', e.reason);
  e.preventDefault();
});

function emitter(target) {
  const map = new Map();
  target.on = (ev, fn) => {
    if (!map.has(ev)) map.set(ev, new Set());
    map.get(ev).add(fn);
    return () => map.get(ev)?.delete(fn);
  };
  target.emit = (ev, arg) => {
    for (const fn of [...(map.get(ev) || [])]) {
      try {
        const r = fn(arg);
        if (r && typeof r.catch === 'function') r.catch((e) => recordError(`${ev} handler failed`, e));
      } catch (e) {
        recordError(`${ev} handler failed`, e);
      }
    }
  };
  return target;
}

async function main() {
  const base = new URL('../', document.baseURI);
  const wsUrl = new URL('ws', base);
  wsUrl.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';

  const ui = new Ui();
  ui.showView('loading', { focus: false });
  const app = emitter({});
  app.h = h;
  app.ui = ui;
  app.errors = errors;
  app.recordError = recordError;
  app.me = null;
  app.contacts = new Map();
  app.callRoot = document.getElementById('call-root');
  app.api = new Api(base);
  try {
    app.store = await openStore({
      onBlocked: () => ui.toast('Close the other Melo tabs of this browser (or reload them) to finish updating.', { error: true, timeout: 60000 }),
      onVersionChange: () => {
        // The database is closed: frames this page would ack could not be stored. Stop the socket;
        // the server keeps them for the reloaded page.
        app.socket.close();
        ui.toast('Melo was updated in another tab: reload this page.', { error: true, timeout: 600000 });
      },
    });
  } catch (e) {
    ui.toast('This browser blocks local storage (IndexedDB); Melo cannot keep your keys.', { error: true, timeout: 60000 });
    throw e;
  }
  app.e2e = new E2E(app.store);
  app.socket = new Socket(wsUrl, {
    getToken: () => app.api.token,
    onTokenExpired: () => auth.refresh(app),
    onError: recordError,
  });
  app.api.refreshToken = () => auth.refresh(app);

  const headerActions = document.getElementById('header-actions');
  const sidebarActions = document.getElementById('sidebar-actions');
  const settingsExtra = document.getElementById('settings-features');
  app.addHeaderAction = (el) => { headerActions.prepend(el); return el; };
  app.addSidebarAction = (el) => { sidebarActions.append(el); return el; };
  app.addSettingsSection = (el) => { settingsExtra.append(el); return el; };

  // Diagnostics for humans and tests (read-only).
  Object.defineProperty(window, '__melo', {
    value: Object.freeze({
      get uid() { return app.me?.uid ?? null; },
      get socket() { return app.socket.state; },
      get synced() { return app.socket.synced; },
      get errors() { return [...errors]; },
      get rateLimited() { return app.api.rateLimited; },
      get reconnectAttempt() { return app.socket.attempt; },
    }),
  });

  // Connection state in the header.
  const conn = document.getElementById('conn-state');
  const labels = { idle: '', connecting: 'Connecting…', open: 'Online', closed: 'Offline — reconnecting…' };
  app.socket.on('state', ({ state }) => {
    conn.dataset.state = state;
    conn.dataset.synced = 'false';
    conn.textContent = state === 'open' ? 'Syncing…' : labels[state] ?? state;
  });
  app.socket.on('sync_done', () => {
    conn.dataset.synced = 'true';
    conn.textContent = labels.open;
  });
  // Rate limited (HTTP 429): a quiet countdown in the header while requests wait.
  const rate = document.getElementById('rate-state');
  let rateTimer = null;
  app.api.onRateLimit = (until) => {
    clearInterval(rateTimer);
    const tick = () => {
      const secs = Math.ceil((until - Date.now()) / 1000);
      if (!until || secs <= 0) {
        clearInterval(rateTimer);
        rate.hidden = true;
        rate.textContent = '';
        delete rate.dataset.until;
        return;
      }
      rate.hidden = false;
      rate.dataset.until = String(until);
      rate.textContent = `Rate limited — retrying in ${secs} s`;
    };
    tick();
    if (until) rateTimer = setInterval(tick, 1000);
  };
  app.socket.on('fatal', ({ reason }) => {
    conn.dataset.state = 'closed';
    conn.textContent = 'Offline';
    const text = reason === 'origin_not_allowed'
      ? 'The server refuses connections from this address (origin_not_allowed). Open Melo at the server\'s own address.'
      : `The server closed the connection for good (${reason}).`;
    ui.toast(text, { error: true, timeout: 60000 });
  });
  app.socket.on('replaced', () => ui.toast('Melo is open in another tab of this browser; this tab is paused.', { error: true, timeout: 15000 }));

  // Narrow screens: the sidebar slides in.
  const toggle = document.getElementById('sidebar-toggle');
  toggle.addEventListener('click', () => {
    const open = document.body.dataset.sidebar !== 'open';
    document.body.dataset.sidebar = open ? 'open' : '';
    toggle.setAttribute('aria-expanded', String(open));
  });
  ui.onViewChange(() => { document.body.dataset.sidebar = ''; toggle.setAttribute('aria-expanded', 'false'); });

  auth.setup(app);
  contacts.setup(app);
  conversation.setup(app);
  settings.setup(app);
  keypins.setup(app);

  for (const [name, mod] of [['chats', chats], ['calls', calls], ['push', push]]) {
    try {
      await mod.init(app);
    } catch (e) {
      recordError(`${name}.init failed`, e);
    }
  }

  await auth.start(app);
}

main().catch((e) => {
  recordError('Melo failed to start', e);
  const t = document.getElementById('toast');
  if (t) { t.hidden = false; t.dataset.kind = 'error'; t.textContent = `Melo failed to start: ${e.message || e}`; }
});
