// Group chats and channels: the chat list in the sidebar, creating a group or a channel, joining by
// an invite code or link (/app/#join=<code>, confirmed by the user first: a link alone joins
// nothing), the chat details view (members and roles, adding a contact, removing, promoting, invite
// links, slow mode, leaving) and live `chat_member` frames.
//
// Messages themselves are shown and sent by the conversation view (conversation.js): this module
// registers every chat with `app.conversations.upsert(...)` and gives it a `recipients()` function
// that lists the members' public keys, so every message is encrypted for every member
// (payload {"ciphertext","iv","encrypted_keys":{"<uid>":"<wrapped>"}}). In a channel only the owner
// and the admins post; the conversation view hides the composer for plain members (`role`).
//
// DOM hooks (tests rely on them):
//   sidebar: #new-group-btn, #new-channel-btn, #join-chat-btn, #chats-status;
//            chats are `#conv-list li[data-kind="chat"][data-chat-id]` (rendered by conversation.js)
//   view "chat-new": #chat-create-form (#chat-name, input[name="chat-type"] chat|channel,
//            #chat-create-submit, #chat-create-error), #chat-join-form (#chat-join-code,
//            #chat-join-submit, #chat-join-error)
//   view "chat-join" (an invite link was opened): #chat-join-prompt ("Join <name>?" for a public
//            chat, else "Join the chat behind this invite?"), #chat-join-confirm,
//            #chat-join-cancel, #chat-join-confirm-error
//   conversation header: #chat-info-btn (opens the details of the open chat)
//   view "chat-info" [data-chat-id][data-role][data-type][data-last-read]: #chat-info-title, #chat-info-back,
//            #chat-members li[data-uid][data-role] (select[data-action="role"],
//            button[data-action="remove"]), #chat-members-refresh, #chat-add-select + #chat-add-btn,
//            #invite-ttl + #invite-create-btn, #invite-link (readonly input) + #invite-copy,
//            #chat-public (owner), #chat-slow-mode (owner/admin), #chat-leave-btn, #chat-info-error

import { h, clear } from './ui.js';

const ROLE_LABEL = { owner: 'Owner', admin: 'Admin', member: 'Member' };
const JOIN_KEY = 'melo.pendingJoin';
const CODE_RE = /^[A-Za-z0-9_-]{4,64}$/;
const MEMBERS_TTL_MS = 5 * 60 * 1000;
// Read markers (POST /status/read) of an open chat: the first one soon after a message shows, then
// at most one per chat every 30 s (the newest message then), and one on leaving the chat or
// hiding the page. The HTTP budget is 20 requests per 2 minutes.
const READ_FIRST_MS = 1500;
const READ_EVERY_MS = 30 * 1000;

let app;
const chats = new Map(); // chatId (number) -> chat from GET /chats/list (+ local updates)
const memberCache = new Map(); // chatId -> {at, promise -> [member]}
const names = new Map(); // uid -> nickname learnt from member lists
let infoChatId = null; // chat shown in the "chat-info" view
let listLoading = null;
let reloadTimer = null;
let infoTimer = null;
let els = {};
let pendingInvite = null; // {code, pub} from a #join= link: asked about once logged in
let joinAsk = 0; // increases with each invite prompt (a newer one replaces an older)
const marked = new Map(); // chatId -> newest message_id this user's read marker is known to be at
const seen = new Map(); // chatId -> newest message_id shown on screen (page visible)
const readState = new Map(); // chatId -> {at: time of the last POST, timer, inflight, again, failed}
let shownChat = null; // the chat whose messages are on screen
let unreadCounted = false; // the unread counts of this session were computed from history
let listLoaded = false;

const chatKey = (id) => `chat:${id}`;
const isStaff = (role) => role === 'owner' || role === 'admin';

export async function init(a) {
  app = a;
  buildSidebar();
  buildNewView();
  buildJoinView();
  buildInfoView();

  // Author names in groups: members who are not contacts are known from the member list.
  const contactName = app.nameOf || ((uid) => uid);
  app.nameOf = (uid) => {
    const n = contactName(uid);
    return n && n !== uid ? n : names.get(uid) || uid;
  };

  app.addConversationAction((desc) => {
    if (desc.kind !== 'chat') return null;
    return h('button', {
      type: 'button', id: 'chat-info-btn', dataset: { action: 'chat-info' },
      'aria-label': `${desc.channel ? 'Channel' : 'Group'} details and members`,
      on: { click: () => showInfo(Number(desc.chatId)) },
    }, desc.channel ? 'Channel info' : 'Members');
  });

  app.on('session', async () => {
    unreadCounted = false;
    listLoaded = false;
    await loadList();
    listLoaded = true;
    if (app.socket.synced) countUnread();
    await previewsFromCache();
    await joinPending();
  });
  // A `gap` lost durable frames (chat_member among them): reload the list and drop cached
  // member lists, whose keys may be stale.
  app.on('resync', () => {
    memberCache.clear();
    reloadSoon();
  });
  app.on('logout', () => {
    chats.clear();
    memberCache.clear();
    names.clear();
    marked.clear();
    seen.clear();
    for (const st of readState.values()) clearTimeout(st.timer);
    readState.clear();
    shownChat = null;
    joinAsk += 1;
    infoChatId = null;
    listLoaded = false;
    setStatus('');
  });
  app.on('conversation', (entry) => {
    trackShown();
    if (entry.kind !== 'chat') return;
    prefetchNames(Number(entry.chatId));
  });
  // Whatever shows in the message list of an open chat (live, cached, history) counts as seen.
  const list = document.getElementById('message-list');
  if (list) {
    new MutationObserver(onListChange).observe(list, {
      childList: true, subtree: true, attributes: true, attributeFilter: ['data-message-id'],
    });
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') onListChange();
    else if (shownChat) flushRead(shownChat);
  });
  addEventListener('pagehide', () => { if (shownChat) flushRead(shownChat); });
  // Leaving a chat saves its read marker at once.
  app.ui.onViewChange(() => trackShown());
  app.socket.on('sync_done', () => { if (listLoaded) countUnread(); });
  app.socket.on('messages_read', (f) => {
    if (f.user_id === app.me?.uid && f.chat_id !== null && f.chat_id !== undefined) note(Number(f.chat_id), f.last_read_message_id);
  });

  app.socket.on('chat_member', onChatMember);
  app.socket.on('key_changed', (f) => {
    for (const [id, c] of memberCache) {
      c.promise.then((list) => { if (list.some((m) => m.unique_id === f.user_id)) memberCache.delete(id); }).catch(() => {});
    }
  });

  // An invite link: /app/#join=<code>. Kept until the user is logged in, then asked about.
  captureJoinHash();
  window.addEventListener('hashchange', () => { if (captureJoinHash() && app.me) joinPending(); });
}

// ---------------------------------------------------------------------------------------------
// Sidebar

function buildSidebar() {
  const group = h('button', { type: 'button', id: 'new-group-btn', on: { click: () => showNew('chat') } }, '+ Group');
  const channel = h('button', { type: 'button', id: 'new-channel-btn', on: { click: () => showNew('channel') } }, '+ Channel');
  const join = h('button', { type: 'button', id: 'join-chat-btn', on: { click: () => showNew('join') } }, 'Join by code');
  app.addSidebarAction(group);
  app.addSidebarAction(channel);
  app.addSidebarAction(join);
  els.status = h('p', { id: 'chats-status', class: 'muted chats-status', role: 'status', hidden: true });
  const list = document.getElementById('conv-list');
  list.parentNode.insertBefore(els.status, list);
}

function setStatus(text, { error = false, retry = false } = {}) {
  const el = clear(els.status);
  el.hidden = !text;
  el.dataset.kind = error ? 'error' : 'info';
  if (!text) return;
  el.append(text);
  if (retry) {
    el.append(' ', h('button', { type: 'button', class: 'link', on: { click: () => loadList() } }, 'Retry'));
  }
}

// ---------------------------------------------------------------------------------------------
// Chat list

async function fetchAllPages(path, query, field) {
  const out = [];
  for (let page = 1; page <= 50; page += 1) {
    const res = await app.api.get(path, { ...query, page, per_page: 100 });
    out.push(...(res?.[field] || []));
    if (page >= (res?.pages || 1)) break;
  }
  return out;
}

function loadList() {
  if (!app.me) return Promise.resolve();
  if (listLoading) return listLoading;
  listLoading = (async () => {
    setStatus('Loading chats…');
    try {
      const list = await fetchAllPages('/chats/list', {}, 'chats');
      const seen = new Set();
      for (const c of list) {
        seen.add(Number(c.id));
        remember(c);
      }
      for (const id of [...chats.keys()]) {
        if (!seen.has(id)) forget(id);
      }
      setStatus('');
    } catch (e) {
      setStatus(`Chats could not be loaded: ${app.ui.errorText(e)}`, { error: true, retry: true });
    } finally {
      listLoading = null;
    }
  })();
  return listLoading;
}

/** Reloads the list soon (several frames in a row cause one request). */
function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadList(), 300);
}

function descriptor(c) {
  const id = Number(c.id);
  return {
    key: chatKey(id), kind: 'chat', chatId: id, title: c.name, channel: c.type === 'channel', role: c.role,
    recipients: () => recipientsFor(id),
  };
}

function remember(c) {
  const id = Number(c.id);
  const old = chats.get(id);
  const chat = { ...(old || {}), ...c, id };
  chats.set(id, chat);
  note(id, chat.last_read_message_id);
  const existing = app.conversations.get(chatKey(id));
  const entry = descriptor(chat);
  if (!existing?.lastTs && chat.created_at) entry.lastTs = chat.created_at;
  if (!existing?.preview) entry.preview = chat.type === 'channel' ? 'Channel' : 'Group';
  app.conversations.upsert(entry);
  // The composer depends on the role: refresh an open conversation of this chat when it changed.
  if (old && old.role !== chat.role && openChatId() === id) app.openConversation(descriptor(chat));
  if (infoChatId === id) renderInfoSoon();
  return chat;
}

/** The last message kept on this device becomes the chat's preview in the list (after a reload). */
async function previewsFromCache() {
  const uid = app.me?.uid;
  for (const id of [...chats.keys()]) {
    let all;
    try {
      all = await app.store.messagesFor(`${uid}|${chatKey(id)}`);
    } catch {
      return;
    }
    const r = all[all.length - 1];
    const entry = app.conversations.get(chatKey(id));
    if (!r || !entry || app.me?.uid !== uid || (entry.lastTs || '') > (r.ts || '')) continue;
    let preview = (r.mine ? 'You: ' : '') + (r.text || '').slice(0, 80);
    if (r.deleted) preview = 'Message deleted';
    else if (r.undecryptable) preview = 'Encrypted message';
    app.conversations.upsert({ key: entry.key, lastTs: r.ts, preview });
  }
}

function forget(id) {
  chats.delete(id);
  memberCache.delete(id);
  app.conversations.remove(chatKey(id));
  if (infoChatId === id && app.ui.currentView === 'chat-info') {
    infoChatId = null;
    app.ui.showView('empty');
  }
}

function openChatId() {
  if (app.ui.currentView !== 'conversation') return null;
  const id = app.ui.view('conversation')?.dataset.chatId;
  return id ? Number(id) : null;
}

function openChat(id) {
  const c = chats.get(id);
  if (c) app.openConversation(descriptor(c));
}

// ---------------------------------------------------------------------------------------------
// Members and keys

function members(id, { fresh = false } = {}) {
  const cached = memberCache.get(id);
  if (cached && !fresh && Date.now() - cached.at < MEMBERS_TTL_MS) return cached.promise;
  const promise = fetchAllPages('/chats/members', { chat_id: id }, 'members').then((list) => {
    for (const m of list) if (m.nickname) names.set(m.unique_id, m.nickname);
    return list;
  });
  memberCache.set(id, { at: Date.now(), promise });
  promise.catch(() => { if (memberCache.get(id)?.promise === promise) memberCache.delete(id); });
  return promise;
}

/** The other members with a key: every message is encrypted for each of them (and for me). */
async function recipientsFor(id) {
  const list = await members(id);
  return list
    .filter((m) => m.unique_id !== app.me?.uid && m.public_e2e_key)
    .map((m) => ({ uid: m.unique_id, publicKeyPem: m.public_e2e_key }));
}

async function prefetchNames(id) {
  const c = chats.get(id);
  if (!c || (c.type === 'channel' && !isStaff(c.role))) return;
  try {
    const list = await members(id);
    // Messages already on screen were labelled before the names were known.
    for (const m of list) {
      for (const el of document.querySelectorAll(`#message-list .message[data-from="${CSS.escape(m.unique_id)}"] .message-author`)) {
        el.textContent = app.nameOf(m.unique_id);
      }
    }
  } catch {
    // names stay uids; sending reports its own error
  }
}

async function onChatMember(f) {
  if (!app.me) return;
  const id = Number(f.chat_id);
  memberCache.delete(id);
  const who = f.user_id === app.me.uid ? 'You' : app.nameOf(f.user_id);
  const c = chats.get(id);
  const title = c?.name || `chat ${id}`;
  if (f.user_id === app.me.uid) {
    if (f.action === 'removed' || f.action === 'left') {
      if (c) forget(id);
      if (f.action === 'removed' && f.by !== app.me.uid) app.ui.toast(`You were removed from ${title}.`);
      return;
    }
    if (f.action === 'added') {
      if (f.by !== app.me.uid) app.ui.toast(`${app.nameOf(f.by)} added you to a chat.`);
      if (!c) reloadSoon();
      return;
    }
    if (f.action === 'role_changed' && c) {
      remember({ ...c, role: f.role });
      app.ui.toast(`You are now ${ROLE_LABEL[f.role] || f.role} of ${title}.`);
      return;
    }
  }
  if (!c) { reloadSoon(); return; }
  if (infoChatId === id) renderInfoSoon();
  // Someone joined with an invite link while this chat's details are shown.
  if (f.action === 'added' && f.by === f.user_id && infoChatId === id && app.ui.currentView === 'chat-info') {
    app.ui.toast(`${who} joined ${title}.`);
  }
}

// ---------------------------------------------------------------------------------------------
// View "chat-new": create a group/channel, join by code

function buildNewView() {
  const nameInput = h('input', { id: 'chat-name', name: 'name', required: true, minlength: '2', maxlength: '128', autocomplete: 'off', 'data-autofocus': true });
  const typeChat = h('input', { type: 'radio', id: 'chat-type-chat', name: 'chat-type', value: 'chat', checked: true });
  const typeChannel = h('input', { type: 'radio', id: 'chat-type-channel', name: 'chat-type', value: 'channel' });
  const createErr = h('p', { id: 'chat-create-error', class: 'form-error', role: 'alert', hidden: true });
  const createBtn = h('button', { type: 'submit', id: 'chat-create-submit', class: 'primary' }, 'Create');
  const createForm = h('form', { id: 'chat-create-form', class: 'card form', novalidate: true, 'aria-labelledby': 'chat-create-title' },
    h('h3', { id: 'chat-create-title' }, 'New group or channel'),
    h('label', { for: 'chat-name' }, 'Name'),
    nameInput,
    h('fieldset', { class: 'chat-type' },
      h('legend', {}, 'Type'),
      h('label', { for: 'chat-type-chat', class: 'radio' }, typeChat, ' Group — every member writes'),
      h('label', { for: 'chat-type-channel', class: 'radio' }, typeChannel, ' Channel — only the owner and admins post')),
    createErr,
    createBtn);
  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    createErr.hidden = true;
    const name = nameInput.value.trim();
    if (name.length < 2 || name.length > 128) {
      showError(createErr, 'A name has 2 to 128 characters.');
      nameInput.focus();
      return;
    }
    const type = typeChannel.checked ? 'channel' : 'chat';
    await app.ui.busy(createBtn, async () => {
      try {
        const res = await app.api.post('/chats/create', { name, type });
        const id = Number(res.chat_id);
        remember({
          id, name, type: res.type || type, role: 'owner', owner_id: app.me.uid, is_public: false, invite_code: null,
          slow_mode_seconds: 0, created_at: new Date().toISOString(), last_read_message_id: null,
        });
        createForm.reset();
        app.ui.toast(`${type === 'channel' ? 'Channel' : 'Group'} “${name}” created.`);
        showInfo(id);
      } catch (e) {
        showError(createErr, app.ui.errorText(e));
      }
    });
  });

  const codeInput = h('input', { id: 'chat-join-code', name: 'code', required: true, autocomplete: 'off', placeholder: 'Invite code or link', 'aria-describedby': 'chat-join-hint' });
  const joinErr = h('p', { id: 'chat-join-error', class: 'form-error', role: 'alert', hidden: true });
  const joinBtn = h('button', { type: 'submit', id: 'chat-join-submit', class: 'primary' }, 'Join');
  const joinForm = h('form', { id: 'chat-join-form', class: 'card form', novalidate: true, 'aria-labelledby': 'chat-join-title' },
    h('h3', { id: 'chat-join-title' }, 'Join with an invite'),
    h('label', { for: 'chat-join-code' }, 'Invite code or link'),
    codeInput,
    h('small', { id: 'chat-join-hint', class: 'muted' }, 'Paste the link you were sent (…/app/#join=…) or just its code.'),
    joinErr,
    joinBtn);
  joinForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    joinErr.hidden = true;
    const code = parseCode(codeInput.value);
    if (!code) {
      showError(joinErr, 'That is not an invite code or link.');
      codeInput.focus();
      return;
    }
    await app.ui.busy(joinBtn, async () => {
      try {
        await join(code);
        joinForm.reset();
      } catch (e) {
        showError(joinErr, joinErrorText(e));
      }
    });
  });

  const section = h('section', { class: 'view view-chat-new', 'aria-labelledby': 'chat-new-title' },
    h('h2', { id: 'chat-new-title' }, 'Groups and channels'),
    createForm,
    joinForm);
  app.ui.registerView('chat-new', section);
  els.newView = { nameInput, typeChat, typeChannel, codeInput, createErr, joinErr };
}

function showNew(mode) {
  if (!app.me) return;
  const v = els.newView;
  v.createErr.hidden = true;
  v.joinErr.hidden = true;
  app.ui.showView('chat-new', { focus: false });
  if (mode === 'join') {
    v.codeInput.focus();
  } else {
    (mode === 'channel' ? v.typeChannel : v.typeChat).checked = true;
    v.nameInput.focus();
  }
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = false;
}

function parseCode(text) {
  const t = (text || '').trim();
  const m = /[#&?]join=([^&#\s]+)/.exec(t);
  let code = t;
  if (m) {
    try {
      code = decodeURIComponent(m[1]);
    } catch {
      return null; // a malformed escape: not a code
    }
  }
  return CODE_RE.test(code) ? code : null;
}

function joinErrorText(e) {
  if (e?.code === 'invite_invalid') return 'This invite is invalid or has expired.';
  return app.ui.errorText(e);
}

async function join(code) {
  const res = await app.api.post('/invites/join', { code });
  const id = Number(res.chat_id);
  memberCache.delete(id);
  await loadList();
  if (!chats.has(id)) await loadList(); // a load that started before the join was still running
  const c = chats.get(id);
  app.ui.toast(c ? `You joined ${c.name}.` : 'You joined the chat.');
  if (c) openChat(id);
  return id;
}

/** Reads an invite link (`#join=<code>`, `&public=1` for a public chat's permanent link). */
function captureJoinHash() {
  const m = /^#join=([^&]+)(&public=1)?$/.exec(location.hash || '');
  if (!m) return false;
  const code = parseCode(`#join=${m[1]}`);
  history.replaceState(null, '', location.pathname + location.search);
  if (!code) return false;
  const invite = { code, pub: !!m[2] };
  try { sessionStorage.setItem(JOIN_KEY, JSON.stringify(invite)); } catch { /* private mode: asks now or never */ }
  pendingInvite = invite;
  if (!app.me) app.ui.toast('Log in to see the chat you were invited to.');
  return true;
}

/** Once logged in, asks whether to join the chat of a pending invite link (nothing joins
 * without the click: any page can link here). */
async function joinPending() {
  let invite = pendingInvite;
  try {
    if (!invite) {
      const raw = sessionStorage.getItem(JOIN_KEY);
      const v = raw && JSON.parse(raw);
      if (v && typeof v.code === 'string' && CODE_RE.test(v.code)) invite = { code: v.code, pub: !!v.pub };
    }
    sessionStorage.removeItem(JOIN_KEY);
  } catch { /* ignore */ }
  pendingInvite = null;
  if (!invite || !app.me) return;
  await askJoin(invite);
}

function buildJoinView() {
  const prompt = h('p', { id: 'chat-join-prompt', class: 'chat-join-prompt', role: 'status' });
  const err = h('p', { id: 'chat-join-confirm-error', class: 'form-error', role: 'alert', hidden: true });
  const confirm = h('button', { type: 'button', id: 'chat-join-confirm', class: 'primary' }, 'Join');
  const cancel = h('button', { type: 'button', id: 'chat-join-cancel' }, 'Cancel');
  const section = h('section', { class: 'view view-chat-join', 'aria-labelledby': 'chat-join-view-title' },
    h('div', { class: 'card' },
      h('h2', { id: 'chat-join-view-title' }, 'Invitation'),
      prompt,
      h('p', { class: 'muted' }, 'Joining shows your nickname and ID to the members of the chat.'),
      err,
      h('div', { class: 'row' }, confirm, cancel)));
  app.ui.registerView('chat-join', section);
  els.join = { section, prompt, err, confirm, cancel, code: null };
  confirm.addEventListener('click', () => {
    const code = els.join.code;
    if (!code) return;
    err.hidden = true;
    app.ui.busy(confirm, async () => {
      try {
        await join(code);
        els.join.code = null;
      } catch (e) {
        showError(err, joinErrorText(e));
      }
    });
  });
  cancel.addEventListener('click', () => {
    els.join.code = null;
    joinAsk += 1;
    app.ui.showView('empty');
  });
}

/** Shows the "Join …?" prompt for an invite. A public chat's link names the chat (GET
 * /chats/by_invite answers for public chats only; other codes are not looked up, as a 404 would
 * only say so); a chat the user is already in just opens. */
async function askJoin({ code, pub }) {
  const ask = ++joinAsk;
  const v = els.join;
  v.code = null;
  v.err.hidden = true;
  v.confirm.disabled = true;
  v.prompt.textContent = 'Checking the invite…';
  app.ui.showView('chat-join');
  let name = null;
  if (pub) {
    try {
      const res = await app.api.get(`/chats/by_invite/${encodeURIComponent(code)}`);
      if (ask !== joinAsk) return;
      const id = Number(res?.chat_id);
      if (id && chats.has(id)) {
        openChat(id);
        return;
      }
      name = typeof res?.name === 'string' && res.name ? res.name : null;
    } catch {
      // no longer public (or expired): the generic question; joining reports the error
    }
  }
  if (ask !== joinAsk) return;
  v.code = code;
  v.prompt.textContent = name ? `Join ${name}?` : 'Join the chat behind this invite?';
  v.confirm.disabled = false;
}

// ---------------------------------------------------------------------------------------------
// View "chat-info": details, members, invites, leave

function buildInfoView() {
  const section = h('section', { class: 'view view-chat-info', 'aria-labelledby': 'chat-info-title' });
  app.ui.registerView('chat-info', section);
  els.info = section;
}

function showInfo(id) {
  if (!chats.has(id)) {
    // A chat the conversation view learnt of from a message before the list had it.
    loadList().then(() => { if (chats.has(id)) showInfo(id); });
    return;
  }
  infoChatId = id;
  // The cached members (chat_member frames drop them, Refresh asks the server).
  renderInfo({ fresh: false });
  app.ui.showView('chat-info');
}

function renderInfoSoon() {
  clearTimeout(infoTimer);
  infoTimer = setTimeout(() => { if (app.ui.currentView === 'chat-info') renderInfo({ fresh: false }); }, 150);
}

async function renderInfo({ fresh }) {
  const id = infoChatId;
  const c = chats.get(id);
  const section = els.info;
  if (!c) return;
  const channel = c.type === 'channel';
  const staff = isStaff(c.role);
  const owner = c.role === 'owner';
  section.dataset.chatId = String(id);
  section.dataset.role = c.role;
  section.dataset.type = c.type;
  if (marked.has(id)) section.dataset.lastRead = marked.get(id); else delete section.dataset.lastRead;
  const errorEl = h('p', { id: 'chat-info-error', class: 'form-error', role: 'alert', hidden: true });
  const fail = (e) => showError(errorEl, app.ui.errorText(e));

  const header = h('div', { class: 'chat-info-header' },
    h('button', { type: 'button', id: 'chat-info-back', class: 'icon-btn', 'aria-label': `Back to ${c.name}`, on: { click: () => openChat(id) } }, '←'),
    h('div', {},
      h('h2', { id: 'chat-info-title', tabindex: '-1' }, c.name),
      h('p', { class: 'muted', id: 'chat-info-meta' }, `${channel ? 'Channel' : 'Group'} · you are ${ROLE_LABEL[c.role] || c.role}`)),
    h('button', { type: 'button', id: 'chat-open-btn', class: 'primary', on: { click: () => openChat(id) } }, channel ? 'Open channel' : 'Open chat'));

  const membersCard = h('div', { class: 'card', 'aria-labelledby': 'chat-members-title' });
  const title = h('h3', { id: 'chat-members-title' }, channel ? 'Subscribers' : 'Members');
  if (channel && !staff) {
    membersCard.append(title);
  } else {
    const refresh = h('button', {
      type: 'button', id: 'chat-members-refresh', class: 'link',
      'aria-label': `Refresh the ${channel ? 'subscribers' : 'members'}`,
      on: { click: () => { memberCache.delete(id); renderInfo({ fresh: true }); } },
    }, 'Refresh');
    membersCard.append(h('div', { class: 'card-title-row' }, title, refresh));
  }
  const membersList = h('ul', { id: 'chat-members', class: 'list chat-members', 'aria-busy': 'true' });
  const membersStatus = h('p', { class: 'muted', role: 'status' }, 'Loading members…');
  membersCard.append(membersStatus, membersList);

  clear(section).append(header, errorEl);
  if (staff) section.append(inviteCard(c, fail));
  section.append(membersCard);
  if (staff) section.append(settingsCard(c, fail));
  if (!owner) section.append(leaveCard(c, fail));

  if (channel && !staff) {
    membersStatus.textContent = 'Only the owner and admins of a channel see its subscribers.';
    membersList.removeAttribute('aria-busy');
    return;
  }
  let list;
  try {
    list = await members(id, { fresh });
  } catch (e) {
    if (infoChatId !== id) return;
    membersStatus.textContent = '';
    membersStatus.append(`Members could not be loaded: ${app.ui.errorText(e)} `,
      h('button', { type: 'button', class: 'link', on: { click: () => renderInfo({ fresh: true }) } }, 'Retry'));
    membersList.removeAttribute('aria-busy');
    return;
  }
  if (infoChatId !== id || !section.contains(membersList)) return;
  membersList.removeAttribute('aria-busy');
  membersStatus.textContent = `${list.length} ${channel ? (list.length === 1 ? 'subscriber' : 'subscribers') : (list.length === 1 ? 'member' : 'members')}`;
  const order = { owner: 0, admin: 1, member: 2 };
  for (const m of [...list].sort((a, b) => (order[a.role] - order[b.role]) || (a.nickname || '').localeCompare(b.nickname || ''))) {
    membersList.append(memberRow(c, m, fail));
  }
  if (staff) membersCard.append(addMemberForm(c, list, fail));
}

function memberRow(c, m, fail) {
  const me = m.unique_id === app.me.uid;
  const label = me ? `${m.nickname || m.unique_id} (you)` : (m.nickname || m.unique_id);
  const li = h('li', { dataset: { uid: m.unique_id, role: m.role } },
    h('span', { class: 'grow' }, h('strong', {}, label), ' ', h('span', { class: 'muted mono' }, m.unique_id)),
    h('span', { class: 'role-badge', dataset: { role: m.role } }, ROLE_LABEL[m.role] || m.role));
  if (c.role === 'owner' && m.role !== 'owner') {
    const selId = `role-${m.unique_id}`;
    const sel = h('select', { id: selId, dataset: { action: 'role' } },
      h('option', { value: 'member' }, 'Member'),
      h('option', { value: 'admin' }, 'Admin'));
    sel.value = m.role;
    sel.addEventListener('change', async () => {
      const role = sel.value;
      sel.disabled = true;
      try {
        await app.api.post('/chats/members/role', { chat_id: c.id, user_unique_id: m.unique_id, role });
        m.role = role;
        li.dataset.role = role;
        li.querySelector('.role-badge').textContent = ROLE_LABEL[role];
        li.querySelector('.role-badge').dataset.role = role;
        memberCache.delete(c.id);
        app.ui.toast(`${label} is now ${ROLE_LABEL[role]}.`);
      } catch (e) {
        sel.value = m.role;
        fail(e);
      } finally {
        sel.disabled = false;
      }
    });
    li.append(h('label', { for: selId, class: 'visually-hidden' }, `Role of ${label}`), sel);
  }
  const canRemove = !me && ((c.role === 'owner' && m.role !== 'owner') || (c.role === 'admin' && m.role === 'member'));
  if (canRemove) {
    const btn = h('button', { type: 'button', class: 'danger', dataset: { action: 'remove' }, 'aria-label': `Remove ${label}` }, 'Remove');
    btn.addEventListener('click', async () => {
      if (btn.dataset.confirm !== 'yes') {
        btn.dataset.confirm = 'yes';
        btn.textContent = 'Confirm remove';
        return;
      }
      await app.ui.busy(btn, async () => {
        try {
          await app.api.post('/chats/members/remove', { chat_id: c.id, user_unique_id: m.unique_id });
          memberCache.delete(c.id);
          li.remove();
          app.ui.toast(`${label} was removed.`);
        } catch (e) {
          fail(e);
        }
      });
    });
    li.append(btn);
  }
  return li;
}

function addMemberForm(c, list, fail) {
  const inChat = new Set(list.map((m) => m.unique_id));
  const candidates = [...app.contacts.values()].filter((x) => !inChat.has(x.uid))
    .sort((a, b) => (a.nickname || '').localeCompare(b.nickname || ''));
  const form = h('form', { id: 'chat-add-form', class: 'form inline-form', novalidate: true });
  if (!candidates.length) {
    form.append(h('p', { class: 'muted' }, app.contacts.size
      ? 'Every contact of yours is already here.'
      : 'Add contacts first to add them here, or share an invite link.'));
    return form;
  }
  const sel = h('select', { id: 'chat-add-select', name: 'uid' },
    candidates.map((x) => h('option', { value: x.uid, dataset: { uid: x.uid } }, `${x.nickname || x.uid} · ${x.uid}`)));
  const btn = h('button', { type: 'submit', id: 'chat-add-btn', class: 'primary' }, 'Add');
  form.append(h('label', { for: 'chat-add-select' }, 'Add a contact'), h('div', { class: 'row' }, sel, btn));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const uid = sel.value;
    if (!uid) return;
    await app.ui.busy(btn, async () => {
      try {
        await app.api.post('/chats/members/add', { chat_id: c.id, user_unique_id: uid });
        memberCache.delete(c.id);
        app.ui.toast(`${app.nameOf(uid)} was added.`);
        await renderInfo({ fresh: true });
      } catch (e) {
        fail(e);
      }
    });
  });
  return form;
}

/** A public chat's link says so: the invited client then asks the server for the chat's name. */
function inviteLink(code, pub = false) {
  return new URL(`#join=${encodeURIComponent(code)}${pub ? '&public=1' : ''}`, new URL('.', document.baseURI)).href;
}

function inviteCard(c, fail) {
  const card = h('div', { class: 'card', 'aria-labelledby': 'invite-title' }, h('h3', { id: 'invite-title' }, 'Invite link'));
  const linkInput = h('input', { id: 'invite-link', readonly: true, 'aria-label': 'Invite link', class: 'mono' });
  const copyBtn = h('button', { type: 'button', id: 'invite-copy' }, 'Copy');
  const linkRow = h('div', { class: 'row', hidden: true }, linkInput, copyBtn);
  const note = h('p', { class: 'muted', id: 'invite-note', role: 'status' });
  const show = (code, text, pub = false) => {
    linkInput.value = inviteLink(code, pub);
    linkInput.dataset.code = code;
    linkRow.hidden = false;
    note.textContent = text;
  };
  copyBtn.addEventListener('click', async () => {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(linkInput.value);
      app.ui.toast('Invite link copied.');
    } catch {
      linkInput.select();
      app.ui.toast('Select the link and copy it (Ctrl+C).');
    }
  });

  const ttl = h('select', { id: 'invite-ttl' },
    h('option', { value: '60' }, '1 hour'),
    h('option', { value: '1440' }, '1 day'),
    h('option', { value: '10080' }, '7 days'));
  ttl.value = '1440';
  const create = h('button', { type: 'button', id: 'invite-create-btn', class: 'primary' }, 'Create invite link');
  create.addEventListener('click', () => app.ui.busy(create, async () => {
    try {
      const res = await app.api.post('/invites/create', { chat_id: c.id, ttl_minutes: Number(ttl.value) });
      const hours = Math.round((res.expires_in || 0) / 3600);
      show(res.code, `Anyone with this link can join until it expires (${hours >= 24 ? `${Math.round(hours / 24)} d` : `${hours} h`}).`);
      linkInput.focus();
      linkInput.select();
    } catch (e) {
      fail(e);
    }
  }));
  card.append(h('div', { class: 'row' }, h('label', { for: 'invite-ttl' }, 'Valid for'), ttl, create), linkRow, note);

  if (c.role === 'owner') {
    const pub = h('input', { type: 'checkbox', id: 'chat-public' });
    pub.checked = !!c.is_public;
    pub.addEventListener('change', async () => {
      pub.disabled = true;
      try {
        const res = await app.api.post('/chats/set_public', { chat_id: c.id, is_public: pub.checked });
        c.is_public = pub.checked;
        c.invite_code = res.invite || null;
        if (res.invite) show(res.invite, 'Permanent public link: it works until you make the chat private.', true);
        else { linkRow.hidden = true; note.textContent = 'The public link no longer works.'; }
      } catch (e) {
        pub.checked = !pub.checked;
        fail(e);
      } finally {
        pub.disabled = false;
      }
    });
    card.append(h('label', { for: 'chat-public', class: 'check' }, pub, ' Public: a permanent link anyone can use'));
  }
  if (c.is_public && c.invite_code) show(c.invite_code, 'Permanent public link.', true);
  return card;
}

function settingsCard(c, fail) {
  const sel = h('select', { id: 'chat-slow-mode' },
    [[0, 'Off'], [10, '10 seconds'], [30, '30 seconds'], [60, '1 minute'], [300, '5 minutes'], [3600, '1 hour']]
      .map(([v, t]) => h('option', { value: String(v) }, t)));
  const current = String(c.slow_mode_seconds || 0);
  if (![...sel.options].some((o) => o.value === current)) sel.append(h('option', { value: current }, `${current} seconds`));
  sel.value = current;
  sel.addEventListener('change', async () => {
    sel.disabled = true;
    try {
      const res = await app.api.post('/chats/set_slow_mode', { chat_id: c.id, seconds: Number(sel.value) });
      c.slow_mode_seconds = res.slow_mode;
      app.ui.toast(res.slow_mode ? `Slow mode: ${res.slow_mode} s between posts of a member.` : 'Slow mode is off.');
    } catch (e) {
      sel.value = String(c.slow_mode_seconds || 0);
      fail(e);
    } finally {
      sel.disabled = false;
    }
  });
  return h('div', { class: 'card' }, h('h3', {}, 'Settings'),
    h('div', { class: 'row' }, h('label', { for: 'chat-slow-mode' }, 'Slow mode'), sel),
    h('p', { class: 'muted' }, 'Members wait this long between posts; the owner and admins do not.'));
}

function leaveCard(c, fail) {
  const btn = h('button', { type: 'button', id: 'chat-leave-btn', class: 'danger' }, c.type === 'channel' ? 'Leave channel' : 'Leave group');
  btn.addEventListener('click', async () => {
    if (btn.dataset.confirm !== 'yes') {
      btn.dataset.confirm = 'yes';
      btn.textContent = 'Confirm: leave';
      return;
    }
    await app.ui.busy(btn, async () => {
      try {
        await app.api.post('/chats/leave', { chat_id: c.id });
        app.ui.toast(`You left ${c.name}.`);
        forget(c.id);
        app.ui.showView('empty');
      } catch (e) {
        fail(e);
      }
    });
  });
  return h('div', { class: 'card' }, btn);
}

// ---------------------------------------------------------------------------------------------
// Read markers and unread counts. The server keeps one read marker per member and chat
// (POST /status/read, moved forward only; GET /chats/list returns it as last_read_message_id).
// While a chat is on screen its newest message is marked read (soon after it shows, then at most
// once per chat every 30 s, and when the chat is left or the page hidden); after
// login the unread count of each chat is the number of others' messages after the marker in its
// recent history (the conversation view adds messages that arrive later).

function note(id, messageId) {
  if (!messageId || (marked.get(id) || '') >= messageId) return;
  marked.set(id, messageId);
  if (infoChatId === id) els.info.dataset.lastRead = messageId;
}

/** A chat's messages on screen changed (or the page became visible): they count as seen. */
function onListChange() {
  const id = openChatId();
  if (!id || !app.me || document.visibilityState !== 'visible') return;
  let newest = seen.get(id) || '';
  for (const el of document.querySelectorAll('#message-list .message[data-message-id]')) {
    const m = el.dataset.messageId;
    if (m > newest) newest = m;
  }
  if (!newest) return;
  seen.set(id, newest);
  scheduleRead(id);
}

/** The chat on screen changed: the one left saves its read marker now. */
function trackShown() {
  const id = openChatId();
  if (shownChat && shownChat !== id) flushRead(shownChat);
  shownChat = id;
}

function readEntry(id) {
  let st = readState.get(id);
  if (!st) { st = { at: 0, timer: null, inflight: false, again: false, failed: null }; readState.set(id, st); }
  return st;
}

function unsaved(id) {
  const newest = seen.get(id);
  return newest && newest > (marked.get(id) || '') && newest !== readState.get(id)?.failed ? newest : null;
}

/** One POST per chat per READ_EVERY_MS while it is open, for the newest message seen by then. */
function scheduleRead(id) {
  const st = readEntry(id);
  if (st.timer || !unsaved(id)) return;
  const wait = Math.max(READ_FIRST_MS, st.at + READ_EVERY_MS - Date.now());
  st.timer = setTimeout(() => { st.timer = null; flushRead(id); }, wait);
}

/** Saves the read marker of chat `id` at the newest message seen now (no throttle: used when
 * leaving the chat and by the timer). */
async function flushRead(id) {
  const st = readEntry(id);
  clearTimeout(st.timer);
  st.timer = null;
  const newest = unsaved(id);
  if (!newest || !app.me) return;
  if (st.inflight) { st.again = true; return; }
  st.inflight = true;
  st.at = Date.now();
  const me = app.me.uid;
  try {
    await app.api.post('/status/read', { chat_id: id, message_id: newest }, { retry: true }); // forward-only: a repeat is harmless
    if (app.me?.uid === me) note(id, newest);
  } catch (e) {
    // Not fatal: the marker catches up with the next message. A message deleted meanwhile is 404
    // (and not tried again).
    if (e?.status === 404) st.failed = newest;
    else console.warn('read marker not saved', e);
  } finally {
    st.inflight = false;
  }
  if (st.again) {
    st.again = false;
    // Left (or hidden) meanwhile: save now; else the throttle applies.
    if (app.me?.uid === me) {
      if (shownChat !== id || document.visibilityState !== 'visible') flushRead(id); else scheduleRead(id);
    }
  }
}

async function countUnread() {
  if (unreadCounted || !app.me) return;
  unreadCounted = true;
  const me = app.me.uid;
  // Newest chats first; a WebSocket request each (the socket's frame budget is 100 a minute).
  for (const c of [...chats.values()].slice(0, 30)) {
    const key = chatKey(c.id);
    if (openChatId() === c.id || !app.conversations.get(key)) continue;
    try {
      const res = await app.socket.request({ type: 'get_history', chat_id: c.id, limit: 50 }, ['history'],
        (f) => String(f.chat_id) === String(c.id));
      if (app.me?.uid !== me) return;
      const last = marked.get(c.id) || '';
      const n = (res.items || []).filter((i) => i.from !== me && !i.deleted && i.message_id > last).length;
      const entry = app.conversations.get(key);
      if (entry && openChatId() !== c.id && n > (entry.unread || 0)) app.conversations.upsert({ key, unread: n });
    } catch {
      // a count is a nicety: leave this chat's as it is
    }
  }
}
