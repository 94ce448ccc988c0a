// Server frames for conversations: messages, statuses (ticks), edits, deletions, pins, reactions,
// read markers, gaps, refused frames and typing.

import { S, RANK, dmKey, chatKey, dbConv, keyOfFrame } from './conv-state.js';
import { upsert, renderList } from './conv-list.js';
import { findRecord, decryptInto, save, loadHistory, markVisibleRead } from './conversation.js';
import { upsertDom } from './message-view.js';

const TYPING_TTL_MS = 10000;

// ---------------------------------------------------------------------------------------------
// Socket frames

export async function onDelivery(f) {
  if (!S.app.me) return;
  const key = keyOfFrame(f);
  if (!key) return;
  const existing = await findRecord(f.message_id);
  if (existing) return; // replayed after a reconnect: already shown
  const mine = f.from === S.app.me.uid;
  const rec = {
    message_id: f.message_id, key, conv: dbConv(key), from: f.from, to: f.to ?? null, chat_id: f.chat_id ?? null, ts: f.ts,
    mine, status: mine ? 'queued' : 'received', reactions: {}, pinned: false, deleted: false, edited_at: null,
  };
  await decryptInto(rec, f.payload);
  if (!S.convs.has(key)) {
    if (rec.chat_id !== null) upsert({ key, kind: 'chat', chatId: rec.chat_id, title: `Chat ${rec.chat_id}` });
    else {
      const uid = key.slice(3);
      upsert({ key, kind: 'dm', uid, title: S.app.nameOf(uid) });
    }
  }
  if (S.current?.key === key && !S.loaded.has(key)) S.loaded.set(key, new Map());
  await save(rec, { isNew: true, live: true });
  if (S.current?.key === key) markVisibleRead();
}

export async function onStatus(f) {
  if (!S.app.me) return;
  if (f.status === 'rate_limited' && f.client_id && S.pending.has(f.client_id)) {
    const p = S.pending.get(f.client_id);
    S.pending.delete(f.client_id);
    failPending(p, `Slow mode: wait ${f.retry_after || 0} s before posting again.`);
    return;
  }
  if (!f.message_id || !(f.status in RANK)) return;
  if (f.self && f.status === 'read') {
    // This user read the message on another device: it is no longer unread here.
    const rec = await findRecord(f.message_id);
    const key = rec?.key || keyOfFrame(f);
    if (rec && !rec.mine && !rec.readSent) {
      rec.readSent = true;
      await S.app.store.putMessage(rec).catch(() => {});
    }
    const e = key ? S.convs.get(key) : null;
    if (e && e.unread) { e.unread = 0; renderList(); }
    return;
  }
  if (f.client_id && S.pending.has(f.client_id)) {
    // The first status for a message this page sent (normally `queued`; a later one when the
    // `queued` reply was lost with a connection): it becomes a stored message.
    const p = S.pending.get(f.client_id);
    S.pending.delete(f.client_id);
    const known = await findRecord(f.message_id);
    const best = [f.status, known?.status, 'queued'].reduce((a, b) => ((RANK[b] ?? -2) > (RANK[a] ?? -2) ? b : a));
    const rec = { ...p, ...(known || {}), message_id: f.message_id, ts: known?.ts || f.ts || p.ts, status: best };
    delete rec.frame;
    delete rec.connId;
    delete rec.error;
    const map = S.loaded.get(p.key);
    if (map) map.delete(p.client_id);
    const el = document.querySelector(`#message-list .message[data-client-id="${CSS.escape(p.client_id)}"]`);
    if (el) el.dataset.messageId = f.message_id;
    await save(rec, { isNew: !known, live: true });
    return;
  }
  const rec = await findRecord(f.message_id);
  if (!rec || !rec.mine) return;
  // Statuses only move forward: a late `queued` never downgrades `delivered`/`read`.
  if ((RANK[f.status] ?? -2) <= (RANK[rec.status] ?? -2)) return;
  rec.status = f.status;
  await save(rec);
}

export async function onEdit(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  rec.edited_at = f.ts;
  await decryptInto(rec, f.payload);
  await save(rec);
}

export async function onDelete(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  rec.deleted = true;
  rec.text = '';
  rec.undecryptable = false;
  await save(rec);
}

export async function onPin(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  rec.pinned = !!f.pinned;
  await save(rec);
}

export function applyReaction(rec, uid, reaction) {
  const r = { ...(rec.reactions || {}) };
  for (const [emoji, uids] of Object.entries(r)) {
    const left = uids.filter((u) => u !== uid);
    if (left.length) r[emoji] = left; else delete r[emoji];
  }
  if (reaction) r[reaction] = [...(r[reaction] || []), uid];
  rec.reactions = r;
}

export async function onReact(f) {
  const rec = await findRecord(f.message_id);
  if (!rec) return;
  applyReaction(rec, f.from, f.reaction);
  await save(rec);
}

export async function onMessagesRead(f) {
  if (!S.app.me || f.chat_id === null || f.chat_id === undefined) return;
  const key = chatKey(f.chat_id);
  if (f.user_id === S.app.me.uid) {
    const e = S.convs.get(key);
    if (e) { e.unread = 0; renderList(); }
  }
}

export function onGap() {
  for (const key of S.convs.keys()) S.stale.add(key);
  if (S.current) loadHistory(S.current);
  // Contacts, requests and the chat list may have missed events too (contacts.js, chats.js).
  S.app.emit('resync', { reason: 'gap' });
  S.app.ui.toast('Some updates expired while you were away; conversations were reloaded.');
}

export function onErrorFrame(f) {
  if (f.ref && S.pending.has(f.ref)) {
    const p = S.pending.get(f.ref);
    S.pending.delete(f.ref);
    failPending(p, f.message || f.reason);
  }
}

export function failPending(p, message) {
  p.status = 'failed';
  p.error = message;
  if (S.current?.key === p.key) upsertDom(p);
  S.app.ui.toast(`Message not sent: ${message}`, { error: true });
}

export function onTyping(f, on) {
  if (!S.app.me || f.user_id === S.app.me.uid) return;
  const key = f.chat_id !== null && f.chat_id !== undefined ? chatKey(f.chat_id) : dmKey(f.user_id);
  if (!S.typing.has(key)) S.typing.set(key, new Map());
  const m = S.typing.get(key);
  clearTimeout(m.get(f.user_id));
  if (on) m.set(f.user_id, setTimeout(() => { m.delete(f.user_id); renderTyping(); renderList(); }, TYPING_TTL_MS));
  else m.delete(f.user_id);
  renderTyping();
  renderList();
}

export function renderTyping() {
  const el = document.getElementById('typing-indicator');
  const m = S.current ? S.typing.get(S.current.key) : null;
  if (!m || !m.size) { el.hidden = true; el.textContent = ''; return; }
  const names = [...m.keys()].map((u) => S.app.nameOf(u));
  el.textContent = S.current.kind === 'dm' ? 'typing…' : `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…`;
  el.hidden = false;
}
