// The conversation view for DMs and chats/channels: opening, history, the local message cache.
// Messages are end-to-end encrypted (e2e.js), kept decrypted in IndexedDB on this device only,
// deduplicated by message_id, and acknowledged as read while the conversation is visible.
// DOM hooks: #conv-list li[data-conv][data-uid], #message-list .message[data-message-id]
//   [data-status="sent|queued|delivered|read|failed|received"][data-mine][data-from],
//   .message-text, #typing-indicator, #composer-input, #composer-send.

import { h, clear } from './ui.js';
import { S, RANK, dmKey, chatKey, dbConv, cmp, previewOf } from './conv-state.js';
import { upsert, syncContacts, restoreList, renderList } from './conv-list.js';
import * as ev from './conv-events.js';
import { upsertDom, scrollToEnd, renderMessage, renderPinned } from './message-view.js';
import { renderTyping } from './conv-events.js';
import * as composer from './composer.js';

const actionFactories = [];

export function setup(a) {
  S.app = a;
  S.app.conversations = {
    upsert: (entry) => upsert(entry),
    remove: (key) => { S.convs.delete(key); if (S.current?.key === key) { S.current = null; S.app.ui.showView('empty'); } renderList(); },
    get: (key) => S.convs.get(key),
    list: () => [...S.convs.values()],
  };
  S.app.openConversation = (desc) => open(desc);
  S.app.addConversationAction = (fn) => { actionFactories.push(fn); if (S.current) renderHeader(); };

  const s = S.app.socket;
  s.on('relay_delivery', ev.onDelivery);
  s.on('msg_status', ev.onStatus);
  s.on('edit', ev.onEdit);
  s.on('delete', ev.onDelete);
  s.on('pin', ev.onPin);
  s.on('react', ev.onReact);
  s.on('messages_read', ev.onMessagesRead);
  s.on('gap', ev.onGap);
  s.on('error', ev.onErrorFrame);
  s.on('open', composer.resendPending);
  s.on('typing_start', (f) => ev.onTyping(f, true));
  s.on('typing_stop', (f) => ev.onTyping(f, false));
  s.on('sync_done', () => {
    if (S.stale.size && S.current && S.stale.has(S.current.key)) loadHistory(S.current);
    markVisibleRead();
  });

  S.app.on('contacts', () => syncContacts());
  S.app.on('presence', ({ uid }) => { if (S.current?.kind === 'dm' && S.current.uid === uid) renderHeader(); });
  S.app.on('session', async () => {
    syncContacts();
    await restoreList();
  });
  S.app.on('logout', () => {
    S.convs.clear();
    S.loaded.clear();
    S.pending.clear();
    S.stale.clear();
    S.current = null;
    renderList();
    clear(document.getElementById('message-list'));
  });

  document.addEventListener('visibilitychange', () => {
    // A hidden page is `away` for the contacts; visible again is `online` (docs/protocol.md §5).
    if (S.app.me && S.app.socket.state === 'open') {
      S.app.socket.send({ type: 'presence', status: document.visibilityState === 'visible' ? 'online' : 'away' }, { queue: false });
    }
    markVisibleRead();
  });
  window.addEventListener('focus', markVisibleRead);
  S.app.ui.onViewChange((name) => {
    if (name !== 'conversation' && S.current) {
      S.current = null;
      renderList();
    }
  });
  document.getElementById('conv-back').addEventListener('click', () => {
    S.app.ui.showView('empty');
    document.body.dataset.sidebar = 'open';
  });

  composer.setup();
}

// ---------------------------------------------------------------------------------------------
// Opening a conversation

export function open(desc) {
  if (!S.app.me) return;
  let key;
  if (desc.kind === 'dm') key = dmKey(desc.uid);
  else if (desc.kind === 'chat') key = chatKey(desc.chatId);
  else key = desc.key;
  const base = S.convs.get(key) || {};
  const entry = upsert({ ...base, ...desc, key, title: desc.title || base.title || (desc.kind === 'dm' ? S.app.nameOf(desc.uid) : `Chat ${desc.chatId}`) });
  S.current = entry;
  entry.unread = 0;
  composer.cancelEdit();
  const section = S.app.ui.view('conversation');
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
  S.app.ui.showView('conversation');
  S.app.emit('conversation', entry);
  showCached(entry).then(() => loadHistory(entry));
}

export function renderHeader() {
  if (!S.current) return;
  document.getElementById('conv-title').textContent = S.current.title || S.current.uid || '';
  const sub = document.getElementById('conv-subtitle');
  if (S.current.kind === 'dm') {
    const c = S.app.contacts.get(S.current.uid);
    sub.textContent = c ? `${S.current.uid} · ${c.presence || 'offline'}` : `${S.current.uid} · not a contact`;
    sub.dataset.presence = c?.presence || 'offline';
  } else {
    sub.textContent = S.current.channel ? `Channel · ${S.current.role || 'member'}` : `Group · ${S.current.role || 'member'}`;
    delete sub.dataset.presence;
  }
  const actions = clear(document.getElementById('conv-actions'));
  for (const fn of actionFactories) {
    try {
      const el = fn(S.current);
      if (el) actions.append(el);
    } catch (e) {
      console.warn('conversation action failed', e);
    }
  }
  if (S.current.kind === 'dm' && !actions.querySelector('[data-action="call"]') && S.app.contacts.has(S.current.uid)) {
    const uid = S.current.uid;
    actions.append(h('button', { type: 'button', id: 'conv-call', dataset: { action: 'call' }, 'aria-label': `Call ${S.current.title}`,
      on: { click: () => (S.app.calls?.startCall ? S.app.calls.startCall(uid) : document.dispatchEvent(new CustomEvent('melo:call', { detail: { uid } }))) } }, 'Call'));
  }
  renderTyping();
  renderPinned();
}

export async function showCached(entry) {
  const map = new Map();
  try {
    for (const r of await S.app.store.messagesFor(dbConv(entry.key))) map.set(r.message_id, r);
  } catch (e) {
    console.warn('cache read failed', e);
  }
  for (const r of S.pending.values()) if (r.key === entry.key) map.set(r.client_id, r);
  S.loaded.set(entry.key, map);
  if (S.current?.key !== entry.key) return;
  const list = document.getElementById('message-list');
  for (const r of [...map.values()].sort(cmp)) list.append(renderMessage(r));
  scrollToEnd(true);
  renderPinned();
  markVisibleRead();
}


export async function fetchHistory(entry, before) {
  const limit = 50;
  if (S.app.socket.state === 'open') {
    const frame = { type: 'get_history', limit };
    if (entry.kind === 'dm') frame.target = entry.uid; else frame.chat_id = Number(entry.chatId);
    if (before) frame.before = before;
    try {
      return await S.app.socket.request(frame, ['history'], (f) => (entry.kind === 'dm'
        ? f.target === entry.uid && (f.chat_id === null || f.chat_id === undefined)
        : String(f.chat_id) === String(entry.chatId)));
    } catch (e) {
      if (e.code) throw e;
      // no answer over the socket: fall back to HTTP
    }
  }
  const path = entry.kind === 'dm' ? `/messages/history/dm/${entry.uid}` : `/messages/history/chat/${entry.chatId}`;
  return S.app.api.get(path, { limit, before });
}

export async function loadHistory(entry, { before } = {}) {
  if (!S.app.me) return;
  const loading = document.getElementById('conv-loading');
  if (S.current?.key === entry.key) loading.hidden = false;
  try {
    const res = await fetchHistory(entry, before);
    S.stale.delete(entry.key);
    const items = res?.items || [];
    const payloads = res?.messages || [];
    for (let i = 0; i < items.length; i += 1) {
      await absorbHistoryItem(entry, items[i], payloads[i]);
    }
    if (S.current?.key === entry.key) {
      renderOlderButton(entry, res?.has_more ? res.next_before : null);
      markVisibleRead();
    }
  } catch (e) {
    if (S.current?.key === entry.key) S.app.ui.toast(`History could not be loaded: ${S.app.ui.errorText(e)}`, { error: true });
  } finally {
    if (S.current?.key === entry.key) loading.hidden = true;
  }
}

export function renderOlderButton(entry, nextBefore) {
  const list = document.getElementById('message-list');
  list.querySelector('.load-older')?.remove();
  if (!nextBefore) return;
  const li = h('li', { class: 'load-older' }, h('button', { type: 'button', class: 'link', on: { click: async (e) => {
    await S.app.ui.busy(e.currentTarget, () => loadHistory(entry, { before: nextBefore }));
  } } }, 'Load older messages'));
  list.prepend(li);
}

export async function absorbHistoryItem(entry, item, payload) {
  const key = entry.key;
  const existing = await findRecord(item.message_id);
  const mine = item.from === S.app.me.uid;
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

export async function findRecord(id) {
  for (const map of S.loaded.values()) if (map.has(id)) return map.get(id);
  try {
    return (await S.app.store.getMessage(id)) || null;
  } catch {
    return null;
  }
}

export async function decryptInto(rec, payload) {
  try {
    rec.text = await S.app.e2e.decrypt(payload);
    rec.undecryptable = false;
  } catch (e) {
    rec.text = '';
    rec.undecryptable = true;
  }
}

export async function save(rec, { isNew = false, live = false } = {}) {
  if (!S.app.me || !rec.message_id) return;
  if (rec.conv !== dbConv(rec.key)) rec.conv = dbConv(rec.key);
  try {
    await S.app.store.putMessage(rec);
  } catch (e) {
    console.warn('message cache write failed', e);
  }
  const map = S.loaded.get(rec.key);
  if (map) {
    if (rec.client_id) map.delete(rec.client_id);
    map.set(rec.message_id, rec);
  }
  const entry = S.convs.get(rec.key);
  if (entry && (!entry.lastTs || rec.ts >= entry.lastTs)) {
    entry.lastTs = rec.ts;
    entry.preview = previewOf(rec);
  }
  if (isNew && live && !rec.mine && entry && !(S.current?.key === rec.key && isVisible())) entry.unread = (entry.unread || 0) + 1;
  if (S.current?.key === rec.key) {
    upsertDom(rec);
    if (rec.pinned !== undefined) renderPinned();
  }
  renderList();
  if (isNew) S.app.emit('message', { conv: rec.key, message: rec });
}

// ---------------------------------------------------------------------------------------------
// Read receipts

export function isVisible() {
  return document.visibilityState === 'visible' && S.app.ui.currentView === 'conversation';
}

export function markVisibleRead() {
  if (!S.current || !isVisible() || !S.app.me) return;
  if (S.current.kind === 'chat' && S.current.channel) {
    // channels produce no read statuses, but the queue entry still needs no more than ack_received.
  }
  const map = S.loaded.get(S.current.key);
  if (!map) return;
  let changed = false;
  for (const rec of map.values()) {
    if (rec.mine || !rec.message_id || rec.readSent) continue;
    S.app.socket.send({ type: 'ack_read', message_id: rec.message_id }, { queue: false });
    if (S.app.socket.state === 'open') {
      rec.readSent = true;
      S.app.store.putMessage(rec).catch(() => {});
      changed = true;
    }
  }
  if (S.current.unread) { S.current.unread = 0; changed = true; }
  if (changed) renderList();
}
