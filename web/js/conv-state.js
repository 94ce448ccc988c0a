// Shared state of the conversation modules (conversation.js, conv-list.js, conv-events.js,
// message-view.js, composer.js): one object, so that every module sees the same open conversation.

export const S = {
  app: null,
  convs: new Map(), // key -> conversation entry ('dm:<uid>' | 'chat:<id>')
  current: null, // the open conversation entry
  loaded: new Map(), // key -> Map(message_id -> record) for conversations opened in this page
  pending: new Map(), // client_id -> record (waiting for msg_status queued)
  stale: new Set(), // conversations whose history must be reloaded (gap)
  typing: new Map(), // conv key -> Map(uid -> timeout)
};

export const RANK = { failed: -1, sent: 0, queued: 1, delivered: 2, read: 3 };

export const dmKey = (uid) => `dm:${uid}`;
export const chatKey = (id) => `chat:${id}`;
export const dbConv = (key) => `${S.app.me.uid}|${key}`;

export function keyOfFrame(f) {
  if (f.chat_id !== undefined && f.chat_id !== null) return chatKey(f.chat_id);
  const peer = f.from === S.app.me.uid ? f.to : f.from;
  return peer ? dmKey(peer) : null;
}

export function cmp(a, b) {
  const x = a.message_id || `~${a.client_id}`;
  const y = b.message_id || `~${b.client_id}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

export function previewOf(r) {
  if (r.deleted) return 'Message deleted';
  if (r.undecryptable) return 'Encrypted message';
  return (r.mine ? 'You: ' : '') + (r.text || '').slice(0, 80);
}
