// Writing: encryption for the conversation's recipients, sending with a client_id (sent again on
// each new connection until the server answers), editing, deleting, pinning, reacting, typing.

import { S } from './conv-state.js';
import { save } from './conversation.js';
import { upsertDom } from './message-view.js';
import { failPending, applyReaction } from './conv-events.js';

let editing = null;
let typingSentAt = 0;
let typingStopTimer = null;
const memberCache = new Map(); // chatId -> {at, members}

export function setup() {
  const form = document.getElementById('composer');
  const input = document.getElementById('composer-input');
  form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    if (e.key === 'Escape' && editing) cancelEdit();
  });
  input.addEventListener('input', () => { autoGrow(input); onComposerInput(); });
  document.getElementById('composer-edit-cancel').addEventListener('click', cancelEdit);
}

// ---------------------------------------------------------------------------------------------
// Sending, editing, managing

export async function recipientsFor(entry) {
  if (entry.kind === 'dm') {
    let c = S.app.contacts.get(entry.uid);
    if (!c?.publicKeyPem) {
      const p = await S.app.api.get('/profile', { user_id: entry.uid });
      c = { uid: entry.uid, publicKeyPem: p.public_e2e_key };
    }
    return [{ uid: entry.uid, publicKeyPem: c.publicKeyPem }];
  }
  if (typeof entry.recipients === 'function') return entry.recipients();
  const cached = memberCache.get(entry.chatId);
  if (cached && Date.now() - cached.at < 60000) return cached.members;
  const members = [];
  for (let page = 1; page <= 100; page += 1) {
    const res = await S.app.api.get('/chats/members', { chat_id: entry.chatId, page, per_page: 100 });
    for (const m of res.members || []) if (m.public_e2e_key && m.unique_id !== S.app.me.uid) members.push({ uid: m.unique_id, publicKeyPem: m.public_e2e_key });
    if (page >= (res.pages || 1)) break;
  }
  memberCache.set(entry.chatId, { at: Date.now(), members });
  return members;
}

export async function encryptFor(entry, text) {
  return S.app.e2e.encryptFor(await recipientsFor(entry), text, { group: entry.kind === 'chat' });
}

export function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight + 2, 200)}px`;
  el.style.overflowY = el.scrollHeight > 200 ? 'auto' : 'hidden';
}

export async function submit() {
  if (!S.current) return;
  const input = document.getElementById('composer-input');
  const text = input.value.replace(/\s+$/, '');
  if (!text.trim()) return;
  if (editing) {
    const rec = editing;
    await S.app.ui.busy(document.getElementById('composer-send'), async () => {
      try {
        const newData = await encryptFor(S.current, text);
        await S.app.api.post('/messages/edit', { message_id: rec.message_id, new_data: newData, ...convRef(rec) });
        rec.text = text;
        rec.edited_at = new Date().toISOString();
        await save(rec);
        input.value = '';
        cancelEdit();
      } catch (e) {
        S.app.ui.toast(`Edit failed: ${S.app.ui.errorText(e)}`, { error: true });
      }
    });
    return;
  }
  input.value = '';
  autoGrow(input);
  stopTyping();
  await send(S.current, text);
  input.focus();
}

export async function send(entry, text, retryOf = null) {
  const clientId = retryOf?.client_id || `m-${crypto.randomUUID()}`;
  const rec = retryOf || {
    client_id: clientId, key: entry.key, from: S.app.me.uid, to: entry.kind === 'dm' ? entry.uid : null,
    chat_id: entry.kind === 'chat' ? Number(entry.chatId) : null, ts: new Date().toISOString(), mine: true, text, status: 'sent',
    reactions: {}, pinned: false, deleted: false,
  };
  rec.status = 'sent';
  rec.error = null;
  S.pending.set(clientId, rec);
  const map = S.loaded.get(entry.key);
  if (map) map.set(clientId, rec);
  if (S.current?.key === entry.key) upsertDom(rec);
  try {
    const payload = await encryptFor(entry, text);
    const frame = { type: 'relay', payload, client_id: clientId };
    if (entry.kind === 'dm') frame.target = entry.uid; else frame.chat_id = Number(entry.chatId);
    rec.frame = frame;
    transmit(rec);
  } catch (e) {
    S.pending.delete(clientId);
    failPending(rec, S.app.ui.errorText(e));
  }
}

/** Sends a pending message's frame on the current connection (see resendPending). */
export function transmit(rec) {
  if (S.app.socket.state !== 'open' || !rec.frame) return;
  rec.connId = S.app.socket.connId;
  S.app.socket.send(rec.frame, { queue: false });
}

/** On every new connection: messages without a `queued` answer are sent again with their
 * client_id; the server stores each client_id once and answers a repeat with the same message_id. */
export function resendPending() {
  for (const rec of S.pending.values()) if (rec.frame && rec.connId !== S.app.socket.connId) transmit(rec);
}

export function retry(rec) {
  const entry = S.convs.get(rec.key);
  if (entry) send(entry, rec.text, rec);
}

export function convRef(rec) {
  return rec.chat_id !== null && rec.chat_id !== undefined ? { chat_id: Number(rec.chat_id) } : { target_id: rec.mine ? rec.to : rec.from };
}

export async function manage(path, rec, extra) {
  try {
    await S.app.api.post(path, { message_id: rec.message_id, ...convRef(rec), ...extra });
    if (path.endsWith('/pin')) rec.pinned = !!extra.pinned;
    if (path.endsWith('/delete')) { rec.deleted = true; rec.text = ''; }
    await save(rec);
  } catch (e) {
    S.app.ui.toast(S.app.ui.errorText(e), { error: true });
  }
}

export async function react(rec, reaction) {
  try {
    await S.app.api.post('/messages/react', { message_id: rec.message_id, reaction, ...convRef(rec) });
    applyReaction(rec, S.app.me.uid, reaction);
    await save(rec);
  } catch (e) {
    S.app.ui.toast(S.app.ui.errorText(e), { error: true });
  }
}

export function startEdit(rec) {
  editing = rec;
  const input = document.getElementById('composer-input');
  input.value = rec.text || '';
  document.getElementById('composer-edit-note').hidden = false;
  document.getElementById('composer-send').textContent = 'Save';
  input.focus();
}

export function cancelEdit() {
  if (!editing) return;
  editing = null;
  document.getElementById('composer-edit-note').hidden = true;
  document.getElementById('composer-send').textContent = 'Send';
  document.getElementById('composer-input').value = '';
}

export function typingTarget() {
  if (!S.current) return null;
  if (S.current.kind === 'dm') return S.app.contacts.has(S.current.uid) ? { target: S.current.uid } : null;
  if (S.current.channel) return null;
  return { chat_id: Number(S.current.chatId) };
}

export function onComposerInput() {
  const t = typingTarget();
  if (!t || editing) return;
  const now = Date.now();
  if (now - typingSentAt > 3000) {
    typingSentAt = now;
    S.app.socket.send({ type: 'typing_start', ...t }, { queue: false });
  }
  clearTimeout(typingStopTimer);
  typingStopTimer = setTimeout(stopTyping, 5000);
}

export function stopTyping() {
  clearTimeout(typingStopTimer);
  if (!typingSentAt) return;
  typingSentAt = 0;
  const t = typingTarget();
  if (t) S.app.socket.send({ type: 'typing_stop', ...t }, { queue: false });
}
