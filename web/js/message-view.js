// Rendering of messages: text, author, time, ticks, reactions, pin and edit marks, the per-message
// tools (react, pin, edit, delete) and the pinned bar.

import { h, clear } from './ui.js';
import { S, cmp } from './conv-state.js';
import { react, manage, startEdit, retry } from './composer.js';

const TICKS = { sent: '○', queued: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };
const TICK_LABEL = { sent: 'Sending', queued: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not sent' };
const REACTIONS = ['👍', '❤️', '😂', '😮'];

// ---------------------------------------------------------------------------------------------
// Rendering messages

export function authorName(rec) {
  if (rec.mine) return 'You';
  return S.app.nameOf(rec.from);
}

export function upsertDom(rec) {
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

export function scrollToEnd(force) {
  const list = document.getElementById('message-list');
  if (force || list) list.scrollTop = list.scrollHeight;
}

export function renderMessage(rec) {
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
      reactions.map(([emoji, uids]) => h('span', { title: uids.map((u) => S.app.nameOf(u)).join(', ') }, `${emoji} ${uids.length}`))));
  }
  const meta = h('div', { class: 'message-meta' });
  if (rec.pinned) meta.append(h('span', { class: 'pin-mark' }, 'pinned'));
  if (rec.edited_at && !rec.deleted) meta.append(h('span', { class: 'edited' }, 'edited'));
  meta.append(h('time', { datetime: rec.ts || '' }, S.app.ui.formatTime(rec.ts)));
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

export function renderTools(rec) {
  const tools = h('div', { class: 'message-tools', role: 'group', 'aria-label': 'Message actions' });
  const canPost = !(S.current?.kind === 'chat' && S.current.channel && !['owner', 'admin'].includes(S.current.role));
  for (const emoji of REACTIONS) {
    const mineReacted = (rec.reactions?.[emoji] || []).includes(S.app.me.uid);
    tools.append(h('button', { type: 'button', dataset: { action: 'react', reaction: emoji }, 'aria-pressed': String(mineReacted),
      'aria-label': mineReacted ? `Remove reaction ${emoji}` : `React ${emoji}`, on: { click: () => react(rec, mineReacted ? '' : emoji) } }, emoji));
  }
  const canPin = S.current?.kind === 'dm' || ['owner', 'admin'].includes(S.current?.role);
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

export function renderPinned() {
  const bar = document.getElementById('pinned-bar');
  const map = S.current ? S.loaded.get(S.current.key) : null;
  const pinned = map ? [...map.values()].filter((r) => r.pinned && !r.deleted).sort(cmp) : [];
  clear(bar);
  bar.hidden = pinned.length === 0;
  if (!pinned.length) return;
  const last = pinned[pinned.length - 1];
  bar.append(h('span', { class: 'muted' }, 'Pinned: '), h('button', { type: 'button', class: 'link', on: { click: () => {
    document.querySelector(`.message[data-message-id="${CSS.escape(last.message_id)}"]`)?.focus();
  } } }, (last.undecryptable ? 'Encrypted message' : last.text || '').slice(0, 120)), ...(pinned.length > 1 ? [h('span', { class: 'muted' }, ` (+${pinned.length - 1} more)`)] : []));
}
