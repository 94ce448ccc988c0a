// Contacts: find by uid and request, confirm, reject, cancel, remove; presence (online/away/offline).
// app.contacts: Map uid -> {uid, nickname, publicKeyPem, presence}; events 'contacts' and 'presence'.

import { h, clear } from './ui.js';
import * as keypins from './keypins.js';

const UID_RE = /^(?!00000000)[0-9]{8}$/;

const state = { incoming: new Map(), outgoing: new Map(), loadedAt: 0 };

function normPresence(s) {
  if (s === 'online' || s === 'away') return s;
  return 'offline';
}

export function setup(app) {
  app.nameOf = (uid) => app.contacts.get(uid)?.nickname || state.incoming.get(uid)?.nickname || uid;

  document.getElementById('nav-contacts').addEventListener('click', () => {
    app.ui.showView('contacts');
    // Events keep the lists current; a periodic reload catches anything missed (HTTP budget).
    if (Date.now() - state.loadedAt > 30000) reload(app);
  });

  const form = document.getElementById('contact-find-form');
  const errEl = document.getElementById('contact-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    errEl.hidden = true;
    const uid = form.uid.value.trim();
    if (!UID_RE.test(uid)) {
      errEl.textContent = 'A user ID has 8 digits.';
      errEl.hidden = false;
      return;
    }
    if (uid === app.me?.uid) {
      errEl.textContent = 'That is your own user ID.';
      errEl.hidden = false;
      return;
    }
    await app.ui.busy(document.getElementById('contact-request-btn'), async () => {
      try {
        const res = await app.api.post('/subscribe', { target_id: uid, secret: false }, { csrf: true });
        form.reset();
        if (res?.status === 'confirmed') {
          app.ui.toast('You are now contacts.');
          await reload(app);
        } else {
          app.ui.toast(`Request sent to ${uid}.`);
          state.outgoing.set(uid, { unique_id: uid, requested_at: new Date().toISOString() });
          render(app);
        }
      } catch (e) {
        errEl.textContent = app.ui.errorText(e);
        errEl.hidden = false;
      }
    });
  });

  const s = app.socket;
  s.on('subscription_request', (f) => {
    state.incoming.set(f.from_id, { unique_id: f.from_id, nickname: f.from_nickname, requested_at: f.ts });
    render(app);
    app.ui.toast(`${f.from_nickname || f.from_id} wants to add you as a contact.`);
  });
  s.on('subscription_confirmed', async (f) => {
    state.outgoing.delete(f.from_id);
    app.ui.toast(`${f.from_nickname || f.from_id} accepted your contact request.`);
    // Not awaited: frames are handled one at a time, and a reload waiting out a 429 must not
    // hold back every later frame and its ack.
    reload(app);
  });
  s.on('subscription_removed', async (f) => {
    state.outgoing.delete(f.from_id);
    state.incoming.delete(f.from_id);
    if (app.contacts.delete(f.from_id)) {
      app.emit('contacts', app.contacts);
    }
    render(app);
  });
  s.on('key_changed', async (f) => {
    if (f.user_id === app.me?.uid) {
      const same = (f.public_e2e_key || '').replace(/\s+/g, '') === (app.e2e.publicKeyPem || '').replace(/\s+/g, '');
      if (!same) app.ui.toast('Your encryption key was replaced on another device. Log out and in again to load it here.', { error: true, timeout: 30000 });
      return;
    }
    const c = app.contacts.get(f.user_id);
    if (c) {
      c.publicKeyPem = f.public_e2e_key;
      await keypins.check(app, c.uid, c.publicKeyPem);
      render(app);
      app.emit('contacts', app.contacts);
    }
  });
  s.on('status_change', (f) => setPresence(app, f.user_id, f.status));
  s.on('pong', (f) => {
    for (const [uid, st] of Object.entries(f.contacts_status || {})) setPresence(app, uid, st.status);
  });
  s.on('sync_done', () => s.send({ type: 'ping' }, { queue: false }));

  app.on('session', () => reload(app));
  app.on('resync', () => reload(app));
  app.on('contacts', () => render(app));
  app.on('logout', () => {
    state.loadedAt = 0;
    state.incoming.clear();
    state.outgoing.clear();
    render(app);
  });
}

function setPresence(app, uid, status) {
  const c = app.contacts.get(uid);
  if (!c) return;
  const p = normPresence(status);
  if (c.presence === p) return;
  c.presence = p;
  for (const dot of document.querySelectorAll(`[data-uid="${uid}"] .presence`)) {
    dot.dataset.presence = p;
    dot.title = p;
    dot.setAttribute('aria-label', p);
  }
  app.emit('presence', { uid, status: p });
}

async function allPages(app, path, key) {
  const out = [];
  for (let page = 1; page <= 50; page += 1) {
    const res = await app.api.get(path, { page, per_page: 100 });
    out.push(...(res?.[key] || []));
    if (!res || page >= (res.pages || 1)) break;
  }
  return out;
}

let reloading = null;
export function reload(app) {
  if (reloading) return reloading;
  reloading = (async () => {
    if (!app.me) return;
    const loading = document.getElementById('contacts-loading');
    loading.hidden = false;
    try {
      const [list, reqs] = await Promise.all([allPages(app, '/contacts', 'contacts'), app.api.get('/contacts/requests')]);
      const next = new Map();
      for (const c of list) {
        const old = app.contacts.get(c.unique_id);
        next.set(c.unique_id, {
          uid: c.unique_id, nickname: c.nickname, publicKeyPem: c.public_e2e_key, presence: old?.presence || 'offline',
        });
      }
      app.contacts.clear();
      for (const [k, v] of next) app.contacts.set(k, v);
      for (const c of app.contacts.values()) await keypins.check(app, c.uid, c.publicKeyPem);
      state.incoming = new Map((reqs?.incoming || []).map((r) => [r.unique_id, r]));
      state.outgoing = new Map((reqs?.outgoing || []).map((r) => [r.unique_id, r]));
      state.loadedAt = Date.now();
      render(app);
      app.emit('contacts', app.contacts);
      if (app.socket.state === 'open') app.socket.send({ type: 'ping' }, { queue: false });
    } catch (e) {
      app.ui.toast(`Contacts could not be loaded: ${app.ui.errorText(e)}`, { error: true });
    } finally {
      loading.hidden = true;
      reloading = null;
    }
  })();
  return reloading;
}

async function act(app, button, path, uid, okText) {
  await app.ui.busy(button, async () => {
    try {
      await app.api.post(path, { target_id: uid }, { csrf: true });
      if (okText) app.ui.toast(okText);
      await reload(app);
    } catch (e) {
      app.ui.toast(app.ui.errorText(e), { error: true });
    }
  });
}

function presenceDot(p) {
  return h('span', { class: 'presence', dataset: { presence: p }, title: p, role: 'img', 'aria-label': p });
}

function render(app) {
  const inc = clear(document.getElementById('incoming-requests'));
  const out = clear(document.getElementById('outgoing-requests'));
  const list = clear(document.getElementById('contacts-list'));
  const badge = document.getElementById('requests-badge');
  badge.textContent = String(state.incoming.size);
  badge.hidden = state.incoming.size === 0;
  badge.setAttribute('aria-label', `${state.incoming.size} contact requests`);

  if (!state.incoming.size) inc.append(h('li', { class: 'muted' }, 'No incoming requests.'));
  for (const r of state.incoming.values()) {
    const li = h('li', { dataset: { uid: r.unique_id } },
      h('span', { class: 'grow' }, h('strong', {}, r.nickname || r.unique_id), ' ', h('span', { class: 'muted' }, r.unique_id)));
    li.append(
      h('button', { type: 'button', class: 'primary', dataset: { action: 'accept' }, 'aria-label': `Accept ${r.nickname || r.unique_id}`,
        on: { click: (e) => act(app, e.currentTarget, '/confirm_subscribe', r.unique_id, 'Contact added.') } }, 'Accept'),
      h('button', { type: 'button', dataset: { action: 'reject' }, 'aria-label': `Decline ${r.nickname || r.unique_id}`,
        on: { click: (e) => act(app, e.currentTarget, '/reject_subscribe', r.unique_id, 'Request declined.') } }, 'Decline'),
    );
    inc.append(li);
  }

  if (!state.outgoing.size) out.append(h('li', { class: 'muted' }, 'No pending requests.'));
  for (const r of state.outgoing.values()) {
    out.append(h('li', { dataset: { uid: r.unique_id } },
      h('span', { class: 'grow' }, r.unique_id, ' ', h('span', { class: 'muted' }, 'waiting for an answer')),
      h('button', { type: 'button', dataset: { action: 'cancel' },
        on: { click: (e) => act(app, e.currentTarget, '/unsubscribe', r.unique_id, 'Request withdrawn.') } }, 'Withdraw')));
  }

  if (!app.contacts.size) list.append(h('li', { class: 'muted' }, 'No contacts yet. Share your user ID or add someone by theirs.'));
  for (const c of app.contacts.values()) {
    const remove = h('button', { type: 'button', class: 'danger', dataset: { action: 'remove' } }, 'Remove');
    remove.addEventListener('click', () => {
      if (remove.dataset.confirm !== 'yes') {
        remove.dataset.confirm = 'yes';
        remove.textContent = 'Confirm removal';
        return;
      }
      act(app, remove, '/unsubscribe', c.uid, `${c.nickname} was removed from your contacts.`);
    });
    list.append(h('li', { dataset: { uid: c.uid }, class: 'clickable', on: { click: (ev) => {
      if (!ev.target.closest('button')) app.openConversation({ kind: 'dm', uid: c.uid });
    } } },
      presenceDot(c.presence),
      h('span', { class: 'grow' }, h('strong', { class: 'contact-name' }, c.nickname), ' ', h('span', { class: 'muted' }, c.uid),
        c.keyChanged ? h('span', { class: 'key-changed', dataset: { keyChanged: 'true' } }, ` · ${c.nickname}'s security key changed`) : null),
      h('button', { type: 'button', class: 'primary', dataset: { action: 'message' },
        on: { click: () => app.openConversation({ kind: 'dm', uid: c.uid }) } }, 'Message'),
      remove));
  }
}
