// The sidebar's conversation list: DMs with every contact, chats added by chats.js, ordered by
// the last message; unread counts and a typing hint.

import { h, clear } from './ui.js';
import { S, dmKey, previewOf } from './conv-state.js';
import { open, renderHeader } from './conversation.js';

// ---------------------------------------------------------------------------------------------
// Conversation list

export function upsert(entry) {
  const old = S.convs.get(entry.key) || { unread: 0, lastTs: '', preview: '' };
  const merged = { ...old, ...entry };
  if (entry.kind === 'dm' && entry.uid) merged.key = dmKey(entry.uid);
  S.convs.set(merged.key, merged);
  if (S.current && S.current.key === merged.key) {
    Object.assign(S.current, merged);
    renderHeader();
  }
  renderList();
  return merged;
}

export function syncContacts() {
  for (const c of S.app.contacts.values()) upsert({ key: dmKey(c.uid), kind: 'dm', uid: c.uid, title: c.nickname });
  for (const [key, e] of S.convs) {
    if (e.kind === 'dm' && !S.app.contacts.has(e.uid)) {
      e.title = e.title || e.uid;
      e.notContact = true;
      if (!e.lastTs) S.convs.delete(key);
    } else if (e.kind === 'dm') {
      e.notContact = false;
    }
  }
  renderList();
  if (S.current) renderHeader();
}

export async function restoreList() {
  // Conversations that have messages cached on this device, with their last message.
  try {
    const all = await S.app.store.getAll('messages');
    const prefix = `${S.app.me.uid}|`;
    const last = new Map();
    const unread = new Map();
    for (const r of all) {
      if (!r.conv.startsWith(prefix)) continue;
      if (!r.mine && !r.readSent && !r.deleted) unread.set(r.key, (unread.get(r.key) || 0) + 1);
      const prev = last.get(r.key);
      if (!prev || prev.message_id < r.message_id) last.set(r.key, r);
    }
    for (const [key, r] of last) {
      const e = S.convs.get(key) || (r.chat_id ? null : { key, kind: 'dm', uid: key.slice(3), title: S.app.nameOf(key.slice(3)) });
      if (!e) continue;
      if (!e.lastTs || r.ts > e.lastTs) {
        e.lastTs = r.ts;
        e.preview = previewOf(r);
      }
      if (e.kind === 'dm') e.unread = Math.max(e.unread || 0, unread.get(key) || 0);
      S.convs.set(key, e);
    }
    renderList();
  } catch (e) {
    console.warn('conversation list restore failed', e);
  }
}


export function renderList() {
  const ul = document.getElementById('conv-list');
  const focused = ul.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.conv : null;
  clear(ul);
  const entries = [...S.convs.values()].sort((a, b) => (b.lastTs || '').localeCompare(a.lastTs || '') || (a.title || '').localeCompare(b.title || ''));
  document.getElementById('conv-empty').hidden = entries.length > 0;
  for (const e of entries) {
    const isCurrent = S.current?.key === e.key;
    const presence = e.kind === 'dm' ? (S.app.contacts.get(e.uid)?.presence || 'offline') : 'none';
    const typingNow = S.typing.get(e.key)?.size > 0;
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
