// Conversation list (sidebar) and the conversation view for DMs and chats/channels.
// Messages are end-to-end encrypted (e2e.js), kept decrypted in IndexedDB on this device only,
// deduplicated by message_id, and acknowledged as read while the conversation is visible.
// DOM hooks: #conv-list li[data-conv][data-uid], #message-list .message[data-message-id]
//   [data-status="sent|queued|delivered|read|failed|received"][data-mine][data-from],
//   .message-text, #typing-indicator, #composer-input, #composer-send.

import { h, clear } from './ui.js';

const RANK = { failed: -1, sent: 0, queued: 1, delivered: 2, read: 3 };
const TICKS = { sent: '○', queued: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };
const TICK_LABEL = { sent: 'Sending', queued: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not sent' };
const REACTIONS = ['👍', '❤️', '😂', '😮'];
const TYPING_TTL_MS = 10000;

let app;
const convs = new Map(); // key -> conversation entry
let current = null; // the open conversation entry
const loaded = new Map(); // key -> Map(message_id -> record) for conversations opened in this page
const pending = new Map(); // client_id -> record (waiting for msg_status queued)
const stale = new Set(); // conversations whose history must be reloaded (gap)
const typing = new Map(); // conv key -> {uid -> timeout}
const actionFactories = [];
let editing = null;
let typingSentAt = 0;
let typingStopTimer = null;
const memberCache = new Map(); // chatId -> {at, members}

const dmKey = (uid) => `dm:${uid}`;
const chatKey = (id) => `chat:${id}`;
const dbConv = (key) => `${app.me.uid}|${key}`;

function keyOfFrame(f) {
  if (f.chat_id !== undefined && f.chat_id !== null) return chatKey(f.chat_id);
  const peer = f.from === app.me.uid ? f.to : f.from;
  return peer ? dmKey(peer) : null;
}

export function setup(a) {
  app = a;
  app.conversations = {
    upsert: (entry) => upsert(entry),
    remove: (key) => { convs.delete(key); if (current?.key === key) { current = null; app.ui.showView('empty'); } renderList(); },
    get: (key) => convs.get(key),
    list: () => [...convs.values()],
  };
  app.openConversation = (desc) => open(desc);
  app.addConversationAction = (fn) => { actionFactories.push(fn); if (current) renderHeader(); };

  const s = app.socket;
  s.on('relay_delivery', onDelivery);
  s.on('msg_status', onStatus);
  s.on('edit', onEdit);
  s.on('delete', onDelete);
  s.on('pin', onPin);
  s.on('react', onReact);
  s.on('messages_read', onMessagesRead);
  s.on('gap', onGap);
  s.on('error', onErrorFrame);
  s.on('open', resendPending);
  s.on('typing_start', (f) => onTyping(f, true));
  s.on('typing_stop', (f) => onTyping(f, false));
  s.on('sync_done', () => {
    if (stale.size && current && stale.has(current.key)) loadHistory(current);
    markVisibleRead();
  });

  app.on('contacts', () => syncContacts());
  app.on('presence', ({ uid }) => { if (current?.kind === 'dm' && current.uid === uid) renderHeader(); });
  app.on('session', async () => {
    syncContacts();
    await restoreList();
  });
  app.on('logout', () => {
    convs.clear();
    loaded.clear();
    pending.clear();
    stale.clear();
    current = null;
    renderList();
    clear(document.getElementById('message-list'));
  });

  document.addEventListener('visibilitychange', () => {
    // A hidden page is `away` for the contacts; visible again is `online` (PROTOCOL presence).
    if (app.me && app.socket.state === 'open') {
      app.socket.send({ type: 'presence', status: document.visibilityState === 'visible' ? 'online' : 'away' }, { queue: false });
    }
    markVisibleRead();
  });
  window.addEventListener('focus', markVisibleRead);
  app.ui.onViewChange((name) => {
    if (name !== 'conversation' && current) {
      current = null;
      renderList();
    }
  });
  document.getElementById('conv-back').addEventListener('click', () => {
    app.ui.showView('empty');
    document.body.dataset.sidebar = 'open';
  });

  const form = document.getElementById('composer');
  const input = document.getElementById('composer-input');
  form.addEventListener('submit', (ev) => { ev.preventDefault(); submit(); });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(); }
    if (ev.key === 'Escape' && editing) cancelEdit();
  });
  input.addEventListener('input', () => { autoGrow(input); onComposerInput(); });
  document.getElementById('composer-edit-cancel').addEventListener('click', cancelEdit);
}

// ---------------------------------------------------------------------------------------------
// Conversation list

function upsert(entry) {
  const old = convs.get(entry.key) || { unread: 0, lastTs: '', preview: '' };
  const merged = { ...old, ...entry };
  if (entry.kind === 'dm' && entry.uid) merged.key = dmKey(entry.uid);
  convs.set(merged.key, merged);
  if (current && current.key === merged.key) {
    Object.assign(current, merged);
    renderHeader();
  }
  renderList();
  return merged;
}

function syncContacts() {
  for (const c of app.contacts.values()) upsert({ key: dmKey(c.uid), kind: 'dm', uid: c.uid, title: c.nickname });
  for (const [key, e] of convs) {
    if (e.kind === 'dm' && !app.contacts.has(e.uid)) {
      e.title = e.title || e.uid;
      e.notContact = true;
      if (!e.lastTs) convs.delete(key);
    } else if (e.kind === 'dm') {
      e.notContact = false;
    }
  }
  renderList();
  if (current) renderHeader();
}

async function restoreList() {
  // Conversations that have messages cached on this device, with their last message.
  try {
    const all = await app.store.getAll('messages');
    const prefix = `${app.me.uid}|`;
    const last = new Map();
    const unread = new Map();
    for (const r of all) {
      if (!r.conv.startsWith(prefix)) continue;
      if (!r.mine && !r.readSent && !r.deleted) unread.set(r.key, (unread.get(r.key) || 0) + 1);
      const prev = last.get(r.key);
      if (!prev || prev.message_id < r.message_id) last.set(r.key, r);
    }
    for (const [key, r] of last) {
      const e = convs.get(key) || (r.chat_id ? null : { key, kind: 'dm', uid: key.slice(3), title: app.nameOf(key.slice(3)) });
      if (!e) continue;
      if (!e.lastTs || r.ts > e.lastTs) {
        e.lastTs = r.ts;
        e.preview = previewOf(r);
      }
      if (e.kind === 'dm') e.unread = Math.max(e.unread || 0, unread.get(key) || 0);
      convs.set(key, e);
    }
    renderList();
  } catch (e) {
    console.warn('conversation list restore failed', e);
  }
}

function previewOf(r) {
  if (r.deleted) return 'Message deleted';
  if (r.undecryptable) return 'Encrypted message';
  return (r.mine ? 'You: ' : '') + (r.text || '').slice(0, 80);
}

function renderList() {
  const ul = document.getElementById('conv-list');
  const focused = ul.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.conv : null;
  clear(ul);
  const entries = [...convs.values()].sort((a, b) => (b.lastTs || '').localeCompare(a.lastTs || '') || (a.title || '').localeCompare(b.title || ''));
  document.getElementById('conv-empty').hidden = entries.length > 0;
  for (const e of entries) {
    const isCurrent = current?.key === e.key;
    const presence = e.kind === 'dm' ? (app.contacts.get(e.uid)?.presence || 'offline') : 'none';
    const typingNow = typing.get(e.key)?.size > 0;
    const btn = h('button', { type: 'button', on: { click: () => open(e) } },
      h('span', { class: 'presence', dataset: { presence }, title: presence, 'aria-hidden': 'true' }),
      h('span', { class: 'conv-name' }, e.title || e.uid || e.key),
      e.unread ? h('span', { class: 'badge', 'aria-label': `${e.unread} unread` }, String(e.unread)) : h('span'),
      h('span', { class: 'conv-preview' }, typingNow ? 'typing…' : (e.preview || '')));
    btn.setAttribute('aria-label', `${e.title || e.key}${e.kind === 'dm' ? `, ${presence}` : ''}${e.unread ? `, ${e.unread} unread` : ''}`);
    const li = h('li', { dataset: { conv: e.key, kind: e.kind }, 'aria-current': isCurrent ? 'true' : null }, btn);
    if (e.kind === 'dm') li.dataset.uid = e.uid;
    else li.dataset.chatId = String(e.chatId);
    ul.append(li);
    if (focused === e.key) btn.focus({ preventScroll: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Opening a conversation

function open(desc) {
  if (!app.me) return;
  let key;
  if (desc.kind === 'dm') key = dmKey(desc.uid);
  else if (desc.kind === 'chat') key = chatKey(desc.chatId);
  else key = desc.key;
  const base = convs.get(key) || {};
  const entry = upsert({ ...base, ...desc, key, title: desc.title || base.title || (desc.kind === 'dm' ? app.nameOf(desc.uid) : `Chat ${desc.chatId}`) });
  current = entry;
  entry.unread = 0;
  cancelEdit();
  const section = app.ui.view('conversation');
  section.dataset.conv = key;
  section.dataset.kind = entry.kind;
  if (entry.kind === 'dm') { section.dataset.peer = entry.uid; delete section.dataset.chatId; } else { section.dataset.chatId = String(entry.chatId); delete section.dataset.peer; }
  renderHeader();
  renderList();
  const readOnly = entry.kind === 'chat' && entry.channel && !['owner', 'admin'].includes(entry.role);
  document.getElementById('composer').hidden = readOnly;
  document.getElementById('composer-readonly').hidden = !readOnly;
  document.getElementById('composer-input').value = '';
  clear(document.getElementById('message-list'));
  app.ui.showView('conversation');
  app.emit('conversation', entry);
  showCached(entry).then(() => loadHistory(entry));
}

function renderHeader() {
  if (!current) return;
  document.getElementById('conv-title').textContent = current.title || current.uid || '';
  const sub = document.getElementById('conv-subtitle');
  if (current.kind === 'dm') {
    const c = app.contacts.get(current.uid);
    sub.textContent = c ? `${current.uid} · ${c.presence || 'offline'}` : `${current.uid} · not a contact`;
    sub.dataset.presence = c?.presence || 'offline';
  } else {
    sub.textContent = current.channel ? `Channel · ${current.role || 'member'}` : `Group · ${current.role || 'member'}`;
    delete sub.dataset.presence;
  }
  const actions = clear(document.getElementById('conv-actions'));
  for (const fn of actionFactories) {
    try {
      const el = fn(current);
      if (el) actions.append(el);
    } catch (e) {
      console.warn('conversation action failed', e);
    }
  }
  if (current.kind === 'dm' && !actions.querySelector('[data-action="call"]') && app.contacts.has(current.uid)) {
    const uid = current.uid;
    actions.append(h('button', { type: 'button', id: 'conv-call', dataset: { action: 'call' }, 'aria-label': `Call ${current.title}`,
      on: { click: () => (app.calls?.startCall ? app.calls.startCall(uid) : document.dispatchEvent(new CustomEvent('melo:call', { detail: { uid } }))) } }, 'Call'));
  }
  renderTyping();
  renderPinned();
}

async function showCached(entry) {
  const map = new Map();
  try {
    for (const r of await app.store.messagesFor(dbConv(entry.key))) map.set(r.message_id, r);
  } catch (e) {
    console.warn('cache read failed', e);
  }
  for (const r of pending.values()) if (r.key === entry.key) map.set(r.client_id, r);
  loaded.set(entry.key, map);
  if (current?.key !== entry.key) return;
  const list = document.getElementById('message-list');
  for (const r of [...map.values()].sort(cmp)) list.append(renderMessage(r));
  scrollToEnd(true);
  renderPinned();
  markVisibleRead();
}

function cmp(a, b) {
  const x = a.message_id || `~${a.client_id}`;
  const y = b.message_id || `~${b.client_id}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

async function fetchHistory(entry, before) {
  const limit = 50;
  if (app.socket.state === 'open') {
    const frame = { type: 'get_history', limit };
    if (entry.kind === 'dm') frame.target = entry.uid; else frame.chat_id = Number(entry.chatId);
    if (before) frame.before = before;
    try {
      return await app.socket.request(frame, ['history'], (f) => (entry.kind === 'dm'
        ? f.target === entry.uid && (f.chat_id === null || f.chat_id === undefined)
        : String(f.chat_id) === String(entry.chatId)));
    } catch (e) {
      if (e.code) throw e;
      // no answer over the socket: fall back to HTTP
    }
  }
  const path = entry.kind === 'dm' ? `/messages/history/dm/${entry.uid}` : `/messages/history/chat/${entry.chatId}`;
  return app.api.get(path, { limit, before });
}

async function loadHistory(entry, { before } = {}) {
  if (!app.me) return;
  const loading = document.getElementById('conv-loading');
  if (current?.key === entry.key) loading.hidden = false;
  try {
    const res = await fetchHistory(entry, before);
    stale.delete(entry.key);
    const items = res?.items || [];
    const payloads = res?.messages || [];
    for (let i = 0; i < items.length; i += 1) {
      await absorbHistoryItem(entry, items[i], payloads[i]);
    }
    if (current?.key === entry.key) {
      renderOlderButton(entry, res?.has_more ? res.next_before : null);
      markVisibleRead();
    }
  } catch (e) {
    if (current?.key === entry.key) app.ui.toast(`History could not be loaded: ${app.ui.errorText(e)}`, { error: true });
  } finally {
    if (current?.key === entry.key) loading.hidden = true;
  }
}

function renderOlderButton(entry, nextBefore) {
  const list = document.getElementById('message-list');
  list.querySelector('.load-older')?.remove();
  if (!nextBefore) return;
  const li = h('li', { class: 'load-older' }, h('button', { type: 'button', class: 'link', on: { click: async (e) => {
    await app.ui.busy(e.currentTarget, () => loadHistory(entry, { before: nextBefore }));
  } } }, 'Load older messages'));
  list.prepend(li);
}

async function absorbHistoryItem(entry, item, payload) {
  const key = entry.key;
  const existing = await findRecord(item.message_id);
  const mine = item.from === app.me.uid;
  const rec = existing || {
    message_id: item.message_id, key, conv: dbConv(key), from: item.from, to: item.to ?? null, chat_id: item.chat_id ?? null,
    ts: item.ts, mine, status: mine ? 'queued' : 'received', reactions: {}, pinned: false, deleted: false,
  };
  const needsText = !existing || (item.edited_at && item.edited_at !== existing.edited_at) || (item.deleted && !existing.deleted);
  rec.pinned = !!item.pinned;
  rec.reactions = item.reactions || {};
  rec.deleted = !!item.deleted;
  rec.edited_at = item.edited_at || null;
  if (mine && item.status && (RANK[item.status] ?? -2) > (RANK[rec.status] ?? -2)) rec.status = item.status;
  if (needsText) {
    if (rec.deleted) { rec.text = ''; rec.undecryptable = false; } else await decryptInto(rec, payload);
  }
  await save(rec, { isNew: !existing, live: false });
}

// ---------------------------------------------------------------------------------------------
// Records

async function findRecord(id) {
  for (const map of loaded.values()) if (map.has(id)) return map.get(id);
  try {
    return (await app.store.getMessage(id)) || null;
  } catch {
    return null;
  }
}

async function decryptInto(rec, payload) {
  try {
    rec.text = await app.e2e.decrypt(payload);
    rec.undecryptable = false;
  } catch (e) {
    rec.text = '';
    rec.undecryptable = true;
  }
}

async function save(rec, { isNew = false, live = false } = {}) {
  if (!app.me || !rec.message_id) return;
  if (rec.conv !== dbConv(rec.key)) rec.conv = dbConv(rec.key);
  try {
    await app.store.putMessage(rec);
  } catch (e) {
    console.warn('message cache write failed', e);
  }
  const map = loaded.get(rec.key);
  if (map) {
    if (rec.client_id) map.delete(rec.client_id);
    map.set(rec.message_id, rec);
  }
  const entry = convs.get(rec.key);
  if (entry && (!entry.lastTs || rec.ts >= entry.lastTs)) {
    entry.lastTs = rec.ts;
    entry.preview = previewOf(rec);
  }
  if (isNew && live && !rec.mine && entry && !(current?.key === rec.key && isVisible())) entry.unread = (entry.unread || 0) + 1;
  if (current?.key === rec.key) {
    upsertDom(rec);
    if (rec.pinned !== undefined) renderPinned();
  }
  renderList();
  if (isNew) app.emit('message', { conv: rec.key, message: rec });
}

// ---------------------------------------------------------------------------------------------
// Socket frames

async function onDelivery(f) {
  if (!app.me) return;
  const key = keyOfFrame(f);
  if (!key) return;
  const existing = await findRecord(f.message_id);
  if (existing) return; // replayed after a reconnect: already shown
  const mine = f.from === app.me.uid;
  const rec = {
    message_id: f.message_id, key, conv: dbConv(key), from: f.from, to: f.to ?? null, chat_id: f.chat_id ?? null, ts: f.ts,
    mine, status: mine ? 'queued' : 'received', reactions: {}, pinned: false, deleted: false, edited_at: null,
  };
  await decryptInto(rec, f.payload);
  if (!convs.has(key)) {
    if (rec.chat_id !== null) upsert({ key, kind: 'chat', chatId: rec.chat_id, title: `Chat ${rec.chat_id}` });
    else {
      const uid = key.slice(3);
      upsert({ key, kind: 'dm', uid, title: app.nameOf(uid) });
    }
  }
  if (current?.key === key && !loaded.has(key)) loaded.set(key, new Map());
  await save(rec, { isNew: true, live: true });
  if (current?.key === key) markVisibleRead();
}

async function onStatus(f) {
  if (!app.me) return;
  if (f.status === 'queued' && f.client_id && pending.has(f.client_id)) {
    const p = pending.get(f.client_id);
    pending.delete(f.client_id);
    const rec = { ...p, message_id: f.message_id, ts: f.ts || p.ts, status: 'queued' };
    delete rec.frame;
    delete rec.connId;
    const map = loaded.get(p.key);
    if (map) map.delete(p.client_id);
    const el = document.querySelector(`#message-list .message[data-client-id="${CSS.escape(p.client_id)}"]`);
    if (el) el.dataset.messageId = f.message_id;
    await save(rec, { isNew: true, live: true });
    return;
  }
  if (f.status === 'rate_limited' && f.client_id && pending.has(f.client_id)) {
    const p = pending.get(f.client_id);
    pending.delete(f.client_id);
    failPending(p, `Slow mode: wait ${f.retry_after || 0} s before posting again.`);
    return;
  }
  if (!f.message_id || !(f.status in RANK)) return;
  const rec = await findRecord(f.message_id);
  if (!rec || !rec.mine) return;
  if ((RANK[f.status] ?? -2) <= (RANK[rec.status] ?? -2)) return;
  rec.status = f.status;
  await save(rec);
}

async function onEdit(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  rec.edited_at = f.ts;
  await decryptInto(rec, f.payload);
  await save(rec);
}

async function onDelete(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  rec.deleted = true;
  rec.text = '';
  rec.undecryptable = false;
  await save(rec);
}

async function onPin(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  rec.pinned = !!f.pinned;
  await save(rec);
}

function applyReaction(rec, uid, reaction) {
  const r = { ...(rec.reactions || {}) };
  for (const [emoji, uids] of Object.entries(r)) {
    const left = uids.filter((u) => u !== uid);
    if (left.length) r[emoji] = left; else delete r[emoji];
  }
  if (reaction) r[reaction] = [...(r[reaction] || []), uid];
  rec.reactions = r;
}

async function onReact(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  applyReaction(rec, f.from, f.reaction);
  await save(rec);
}

async function onMessagesRead(f) {
  if (!app.me || f.chat_id === null || f.chat_id === undefined) return;
  const key = chatKey(f.chat_id);
  if (f.user_id === app.me.uid) {
    const e = convs.get(key);
    if (e) { e.unread = 0; renderList(); }
  }
}

function onGap() {
  for (const key of convs.keys()) stale.add(key);
  if (current) loadHistory(current);
  app.ui.toast('Some updates expired while you were away; conversations were reloaded.');
}

function onErrorFrame(f) {
  if (f.ref && pending.has(f.ref)) {
    const p = pending.get(f.ref);
    pending.delete(f.ref);
    failPending(p, f.message || f.reason);
  }
}

function failPending(p, message) {
  p.status = 'failed';
  p.error = message;
  if (current?.key === p.key) upsertDom(p);
  app.ui.toast(`Message not sent: ${message}`, { error: true });
}

function onTyping(f, on) {
  if (!app.me || f.user_id === app.me.uid) return;
  const key = f.chat_id !== null && f.chat_id !== undefined ? chatKey(f.chat_id) : dmKey(f.user_id);
  if (!typing.has(key)) typing.set(key, new Map());
  const m = typing.get(key);
  clearTimeout(m.get(f.user_id));
  if (on) m.set(f.user_id, setTimeout(() => { m.delete(f.user_id); renderTyping(); renderList(); }, TYPING_TTL_MS));
  else m.delete(f.user_id);
  renderTyping();
  renderList();
}

function renderTyping() {
  const el = document.getElementById('typing-indicator');
  const m = current ? typing.get(current.key) : null;
  if (!m || !m.size) { el.hidden = true; el.textContent = ''; return; }
  const names = [...m.keys()].map((u) => app.nameOf(u));
  el.textContent = current.kind === 'dm' ? 'typing…' : `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…`;
  el.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Read receipts

function isVisible() {
  return document.visibilityState === 'visible' && app.ui.currentView === 'conversation';
}

function markVisibleRead() {
  if (!current || !isVisible() || !app.me) return;
  if (current.kind === 'chat' && current.channel) {
    // channels produce no read statuses, but the queue entry still needs no more than ack_received.
  }
  const map = loaded.get(current.key);
  if (!map) return;
  let changed = false;
  for (const rec of map.values()) {
    if (rec.mine || !rec.message_id || rec.readSent) continue;
    app.socket.send({ type: 'ack_read', message_id: rec.message_id }, { queue: false });
    if (app.socket.state === 'open') {
      rec.readSent = true;
      app.store.putMessage(rec).catch(() => {});
      changed = true;
    }
  }
  if (current.unread) { current.unread = 0; changed = true; }
  if (changed) renderList();
}

// ---------------------------------------------------------------------------------------------
// Rendering messages

function authorName(rec) {
  if (rec.mine) return 'You';
  return app.nameOf(rec.from);
}

function upsertDom(rec) {
  const list = document.getElementById('message-list');
  const sel = rec.message_id
    ? `.message[data-message-id="${CSS.escape(rec.message_id)}"]${rec.client_id ? `, .message[data-client-id="${CSS.escape(rec.client_id)}"]` : ''}`
    : `.message[data-client-id="${CSS.escape(rec.client_id)}"]`;
  const olds = [...list.querySelectorAll(sel)];
  const el = renderMessage(rec);
  if (olds.length) {
    const hadFocus = olds.some((o) => o.contains(document.activeElement));
    const action = document.activeElement?.dataset?.action;
    olds[0].replaceWith(el);
    if (hadFocus) (el.querySelector(`button[data-action="${action}"]`) || el).focus({ preventScroll: true });
    for (const o of olds.slice(1)) o.remove();
    return;
  }
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  // Insert in message_id order (pending ones last).
  const id = rec.message_id || `~${rec.client_id}`;
  let before = null;
  for (const child of list.querySelectorAll('.message')) {
    const cid = child.dataset.messageId || `~${child.dataset.clientId}`;
    if (cid > id) { before = child; break; }
  }
  list.insertBefore(el, before);
  if (atEnd || rec.mine) scrollToEnd();
}

function scrollToEnd(force) {
  const list = document.getElementById('message-list');
  if (force || list) list.scrollTop = list.scrollHeight;
}

function renderMessage(rec) {
  const isChat = rec.chat_id !== null && rec.chat_id !== undefined;
  const status = rec.mine ? rec.status || 'queued' : 'received';
  const li = h('li', {
    class: 'message',
    dataset: {
      from: rec.from, mine: String(!!rec.mine), status,
      pinned: String(!!rec.pinned), deleted: String(!!rec.deleted), undecryptable: String(!!rec.undecryptable),
    },
    tabindex: '0',
  });
  if (rec.message_id) li.dataset.messageId = rec.message_id;
  if (rec.client_id) li.dataset.clientId = rec.client_id;
  if (isChat && !rec.mine) li.append(h('div', { class: 'message-author' }, authorName(rec)));
  let text = rec.text;
  if (rec.deleted) text = 'Message deleted';
  else if (rec.undecryptable) text = 'This message cannot be decrypted on this device.';
  li.append(h('div', { class: 'message-text' }, text));
  const reactions = Object.entries(rec.reactions || {}).filter(([, u]) => u.length);
  if (reactions.length) {
    li.append(h('div', { class: 'reactions', 'aria-label': 'Reactions' },
      reactions.map(([emoji, uids]) => h('span', { title: uids.map((u) => app.nameOf(u)).join(', ') }, `${emoji} ${uids.length}`))));
  }
  const meta = h('div', { class: 'message-meta' });
  if (rec.pinned) meta.append(h('span', { class: 'pin-mark' }, 'pinned'));
  if (rec.edited_at && !rec.deleted) meta.append(h('span', { class: 'edited' }, 'edited'));
  meta.append(h('time', { datetime: rec.ts || '' }, app.ui.formatTime(rec.ts)));
  if (rec.mine) {
    meta.append(h('span', { class: 'ticks', role: 'img', 'aria-label': TICK_LABEL[status] || status, title: rec.error || TICK_LABEL[status] || status }, TICKS[status] || ''));
  }
  li.append(meta);
  if (rec.status === 'failed' && rec.mine) {
    li.append(h('div', { class: 'form-error' }, rec.error || 'Not sent', ' ',
      h('button', { type: 'button', class: 'link', on: { click: () => retry(rec) } }, 'Retry')));
  }
  if (rec.message_id && !rec.deleted) li.append(renderTools(rec));
  return li;
}

function renderTools(rec) {
  const tools = h('div', { class: 'message-tools', role: 'group', 'aria-label': 'Message actions' });
  const canPost = !(current?.kind === 'chat' && current.channel && !['owner', 'admin'].includes(current.role));
  for (const emoji of REACTIONS) {
    const mineReacted = (rec.reactions?.[emoji] || []).includes(app.me.uid);
    tools.append(h('button', { type: 'button', dataset: { action: 'react', reaction: emoji }, 'aria-pressed': String(mineReacted),
      'aria-label': mineReacted ? `Remove reaction ${emoji}` : `React ${emoji}`, on: { click: () => react(rec, mineReacted ? '' : emoji) } }, emoji));
  }
  const canPin = current?.kind === 'dm' || ['owner', 'admin'].includes(current?.role);
  if (canPin) {
    tools.append(h('button', { type: 'button', dataset: { action: 'pin' }, on: { click: () => manage('/messages/pin', rec, { pinned: !rec.pinned }) } }, rec.pinned ? 'Unpin' : 'Pin'));
  }
  if (rec.mine && canPost && !rec.undecryptable) {
    tools.append(h('button', { type: 'button', dataset: { action: 'edit' }, on: { click: () => startEdit(rec) } }, 'Edit'));
  }
  if (rec.mine) {
    const del = h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' } }, 'Delete');
    del.addEventListener('click', () => {
      if (del.dataset.confirm !== 'yes') { del.dataset.confirm = 'yes'; del.textContent = 'Delete for everyone?'; return; }
      manage('/messages/delete', rec, {});
    });
    tools.append(del);
  }
  return tools;
}

function renderPinned() {
  const bar = document.getElementById('pinned-bar');
  const map = current ? loaded.get(current.key) : null;
  const pinned = map ? [...map.values()].filter((r) => r.pinned && !r.deleted).sort(cmp) : [];
  clear(bar);
  bar.hidden = pinned.length === 0;
  if (!pinned.length) return;
  const last = pinned[pinned.length - 1];
  bar.append(h('span', { class: 'muted' }, 'Pinned: '), h('button', { type: 'button', class: 'link', on: { click: () => {
    document.querySelector(`.message[data-message-id="${CSS.escape(last.message_id)}"]`)?.focus();
  } } }, (last.undecryptable ? 'Encrypted message' : last.text || '').slice(0, 120)), ...(pinned.length > 1 ? [h('span', { class: 'muted' }, ` (+${pinned.length - 1} more)`)] : []));
}

// ---------------------------------------------------------------------------------------------
// Sending, editing, managing

async function recipientsFor(entry) {
  if (entry.kind === 'dm') {
    let c = app.contacts.get(entry.uid);
    if (!c?.publicKeyPem) {
      const p = await app.api.get('/profile', { user_id: entry.uid });
      c = { uid: entry.uid, publicKeyPem: p.public_e2e_key };
    }
    return [{ uid: entry.uid, publicKeyPem: c.publicKeyPem }];
  }
  if (typeof entry.recipients === 'function') return entry.recipients();
  const cached = memberCache.get(entry.chatId);
  if (cached && Date.now() - cached.at < 60000) return cached.members;
  const members = [];
  for (let page = 1; page <= 100; page += 1) {
    const res = await app.api.get('/chats/members', { chat_id: entry.chatId, page, per_page: 100 });
    for (const m of res.members || []) if (m.public_e2e_key && m.unique_id !== app.me.uid) members.push({ uid: m.unique_id, publicKeyPem: m.public_e2e_key });
    if (page >= (res.pages || 1)) break;
  }
  memberCache.set(entry.chatId, { at: Date.now(), members });
  return members;
}

async function encryptFor(entry, text) {
  return app.e2e.encryptFor(await recipientsFor(entry), text, { group: entry.kind === 'chat' });
}

function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight + 2, 200)}px`;
  el.style.overflowY = el.scrollHeight > 200 ? 'auto' : 'hidden';
}

async function submit() {
  if (!current) return;
  const input = document.getElementById('composer-input');
  const text = input.value.replace(/\s+$/, '');
  if (!text.trim()) return;
  if (editing) {
    const rec = editing;
    await app.ui.busy(document.getElementById('composer-send'), async () => {
      try {
        const newData = await encryptFor(current, text);
        await app.api.post('/messages/edit', { message_id: rec.message_id, new_data: newData, ...convRef(rec) });
        rec.text = text;
        rec.edited_at = new Date().toISOString();
        await save(rec);
        input.value = '';
        cancelEdit();
      } catch (e) {
        app.ui.toast(`Edit failed: ${app.ui.errorText(e)}`, { error: true });
      }
    });
    return;
  }
  input.value = '';
  autoGrow(input);
  stopTyping();
  await send(current, text);
  input.focus();
}

async function send(entry, text, retryOf = null) {
  const clientId = retryOf?.client_id || `m-${crypto.randomUUID()}`;
  const rec = retryOf || {
    client_id: clientId, key: entry.key, from: app.me.uid, to: entry.kind === 'dm' ? entry.uid : null,
    chat_id: entry.kind === 'chat' ? Number(entry.chatId) : null, ts: new Date().toISOString(), mine: true, text, status: 'sent',
    reactions: {}, pinned: false, deleted: false,
  };
  rec.status = 'sent';
  rec.error = null;
  pending.set(clientId, rec);
  const map = loaded.get(entry.key);
  if (map) map.set(clientId, rec);
  if (current?.key === entry.key) upsertDom(rec);
  try {
    const payload = await encryptFor(entry, text);
    const frame = { type: 'relay', payload, client_id: clientId };
    if (entry.kind === 'dm') frame.target = entry.uid; else frame.chat_id = Number(entry.chatId);
    rec.frame = frame;
    transmit(rec);
  } catch (e) {
    pending.delete(clientId);
    failPending(rec, app.ui.errorText(e));
  }
}

/** Sends a pending message's frame on the current connection (see resendPending). */
function transmit(rec) {
  if (app.socket.state !== 'open' || !rec.frame) return;
  rec.connId = app.socket.connId;
  app.socket.send(rec.frame, { queue: false });
}

/** On every new connection: messages without a `queued` answer are sent again with their
 * client_id; the server stores each client_id once and answers a repeat with the same message_id. */
function resendPending() {
  for (const rec of pending.values()) if (rec.frame && rec.connId !== app.socket.connId) transmit(rec);
}

function retry(rec) {
  const entry = convs.get(rec.key);
  if (entry) send(entry, rec.text, rec);
}

function convRef(rec) {
  return rec.chat_id !== null && rec.chat_id !== undefined ? { chat_id: Number(rec.chat_id) } : { target_id: rec.mine ? rec.to : rec.from };
}

async function manage(path, rec, extra) {
  try {
    await app.api.post(path, { message_id: rec.message_id, ...convRef(rec), ...extra });
    if (path.endsWith('/pin')) rec.pinned = !!extra.pinned;
    if (path.endsWith('/delete')) { rec.deleted = true; rec.text = ''; }
    await save(rec);
  } catch (e) {
    app.ui.toast(app.ui.errorText(e), { error: true });
  }
}

async function react(rec, reaction) {
  try {
    await app.api.post('/messages/react', { message_id: rec.message_id, reaction, ...convRef(rec) });
    applyReaction(rec, app.me.uid, reaction);
    await save(rec);
  } catch (e) {
    app.ui.toast(app.ui.errorText(e), { error: true });
  }
}

function startEdit(rec) {
  editing = rec;
  const input = document.getElementById('composer-input');
  input.value = rec.text || '';
  document.getElementById('composer-edit-note').hidden = false;
  document.getElementById('composer-send').textContent = 'Save';
  input.focus();
}

function cancelEdit() {
  if (!editing) return;
  editing = null;
  document.getElementById('composer-edit-note').hidden = true;
  document.getElementById('composer-send').textContent = 'Send';
  document.getElementById('composer-input').value = '';
}

function typingTarget() {
  if (!current) return null;
  if (current.kind === 'dm') return app.contacts.has(current.uid) ? { target: current.uid } : null;
  if (current.channel) return null;
  return { chat_id: Number(current.chatId) };
}

function onComposerInput() {
  const t = typingTarget();
  if (!t || editing) return;
  const now = Date.now();
  if (now - typingSentAt > 3000) {
    typingSentAt = now;
    app.socket.send({ type: 'typing_start', ...t }, { queue: false });
  }
  clearTimeout(typingStopTimer);
  typingStopTimer = setTimeout(stopTyping, 5000);
}

function stopTyping() {
  clearTimeout(typingStopTimer);
  if (!typingSentAt) return;
  typingSentAt = 0;
  const t = typingTarget();
  if (t) app.socket.send({ type: 'typing_stop', ...t }, { queue: false });
}
