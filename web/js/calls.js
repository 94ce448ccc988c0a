// 1:1 voice calls over WebRTC (docs/protocol.md §4.8 ICE servers, §5.7 call signalling).
//
// The server keeps the call's state machine; this module drives one RTCPeerConnection per call
// and renders the call panel in #call-root. Test hooks: `#call-root [data-call-state]`,
// `data-call-direction`, and the stats line `.call-stats` with `data-bytes-received`,
// `data-bytes-sent` and `data-route` (the local candidate type of the selected pair: `relay`
// when the call goes through TURN).
//
// Entry points: `startCall(uid)` (exported), and a `melo:call` DOM event on `document` with
// `detail: {uid}` for UI code that does not import this module.

const RELAY_KEY = 'melo.calls.relay';
const STATS_INTERVAL_MS = 1000;

/** Final states: the call is over, the panel shows why until it is closed. */
const FINAL = new Set(['rejected', 'missed', 'busy', 'ended', 'answered_elsewhere', 'failed']);

let app = null;
/** The current (or last, while its final state is shown) call. */
let call = null;

/** Whether calls must use TURN relays only (the "Relay calls through TURN" setting). */
export function relayOnly() {
  try {
    return localStorage.getItem(RELAY_KEY) === '1';
  } catch {
    return false;
  }
}

export function setRelayOnly(on) {
  try {
    if (on) localStorage.setItem(RELAY_KEY, '1');
    else localStorage.removeItem(RELAY_KEY);
  } catch {
    // Storage refused (private mode): the setting lasts for this page only.
  }
}

export function init(a) {
  app = a;
  // `?relay=1` in the page URL turns the setting on (links, tests). A link never turns it off:
  // `?relay=0` would let any page silently expose the user's IP address in calls.
  if (new URLSearchParams(location.search).get('relay') === '1') setRelayOnly(true);
  const s = app.socket;
  s.on('call_start', onCallStart);
  s.on('call_state', onCallState);
  s.on('call_signal', (f) => onSignal(f, (f.payload && f.payload.signal) || '', f.payload || {}));
  for (const t of ['offer', 'answer', 'candidate', 'ice', 'ringing']) {
    s.on(t, (f) => onSignal(f, t, f));
  }
  s.on('error', onErrorFrame);
  document.addEventListener('melo:call', (e) => {
    if (e.detail && e.detail.uid) startCall(String(e.detail.uid));
  });
  addEventListener('pagehide', () => {
    if (call && !FINAL.has(call.state) && call.signalled) sendFrame('hangup');
  });
  renderSettings();
  if (typeof app.addConversationAction === 'function') app.addConversationAction(callButton);
  if (typeof app.on === 'function') {
    app.on('logout', () => {
      dropIceServers();
      if (call) {
        if (!FINAL.has(call.state) && call.signalled) sendFrame('hangup');
        cleanup(call);
      }
      call = null;
      const r = root();
      if (r) r.replaceChildren();
    });
  }
  app.calls = { startCall, relayOnly, setRelayOnly, get active() { return !!call && !FINAL.has(call.state); } };
}

/** The "Call" button of a DM conversation with an accepted contact. */
function callButton(desc) {
  if (!desc || desc.kind !== 'dm' || !desc.uid) return null;
  const uid = String(desc.uid);
  if (app.contacts instanceof Map && !app.contacts.has(uid)) return null;
  const b = el(
    'button',
    { type: 'button', id: 'call-start', class: 'call-start', 'data-action': 'call', 'aria-label': `Call ${nameOf(uid)}` },
    'Call',
  );
  b.addEventListener('click', () => startCall(uid));
  return b;
}

// ---------------------------------------------------------------------------------------------
// Outgoing calls

/** Starts an audio call to an accepted contact `uid`. */
export async function startCall(uid) {
  if (!app) return;
  if (call && !FINAL.has(call.state)) {
    toast('You are already in a call.');
    return;
  }
  const c = newCall(uid, 'out', null);
  setState(c, 'starting', 'Calling…');
  try {
    await preparePeer(c);
  } catch (e) {
    fail(c, mediaError(e));
    return;
  }
  if (c !== call || FINAL.has(c.state)) return;
  c.startRef = sendFrame('call_start', { media: 'audio' }, c);
  c.signalled = true;
}

/** The caller's offer, once the server created the call (`call_state` `ringing`). */
async function sendOffer(c) {
  try {
    const offer = await c.pc.createOffer();
    await c.pc.setLocalDescription(offer);
    if (c !== call || FINAL.has(c.state)) return;
    sendFrame('offer', { sdp: c.pc.localDescription.sdp }, c);
    flushLocalCandidates(c);
  } catch (e) {
    hangup(c, `Could not start the call: ${e.message || e}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Incoming calls

function onCallStart(f) {
  if (!f.call_id || !f.from) return;
  if (call && call.id === f.call_id) return; // repeated after a reconnect
  if (call && !FINAL.has(call.state)) return; // the server answers busy for us
  const c = newCall(String(f.from), 'in', f.call_id);
  setState(c, 'incoming', 'Incoming call…');
  sendFrame('ringing', {}, c);
  notifyHidden(c);
}

/** While this tab is hidden, an incoming call also shows a (content-free) system notification
 * when notifications are allowed and the worker is installed; it goes when the ringing stops. */
async function notifyHidden(c) {
  try {
    if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return;
    const reg = await navigator.serviceWorker.getRegistration(new URL('./', document.baseURI).href);
    if (!reg || c !== call || c.state !== 'incoming') return;
    await reg.showNotification('Incoming call', {
      body: 'Open Melo to answer.',
      tag: 'melo-call',
      requireInteraction: true,
    });
    c.notified = reg;
  } catch {
    // Notifications are a convenience here: the ringing panel is the call's UI.
  }
}

async function dropNotification(c) {
  const reg = c.notified;
  if (!reg) return;
  c.notified = null;
  try {
    for (const n of await reg.getNotifications({ tag: 'melo-call' })) n.close();
  } catch {
    // gone already
  }
}

async function accept(c) {
  if (c !== call || c.state !== 'incoming') return;
  setState(c, 'accepting', 'Connecting…');
  c.acceptRef = sendFrame('call_accept', {}, c);
  c.signalled = true;
  try {
    await preparePeer(c);
  } catch (e) {
    hangup(c, mediaError(e));
    return;
  }
  answerIfReady(c);
}

function reject(c) {
  if (c !== call || c.state !== 'incoming') return;
  sendFrame('call_reject', {}, c);
  finish(c, 'rejected', 'Declined');
}

/** The callee answers once it accepted, has its peer connection, and has the caller's offer. */
async function answerIfReady(c) {
  if (!c.pc || !c.remoteOffer || c.answered) return;
  c.answered = true;
  try {
    await c.pc.setRemoteDescription({ type: 'offer', sdp: c.remoteOffer });
    await addRemoteCandidates(c);
    const answer = await c.pc.createAnswer();
    await c.pc.setLocalDescription(answer);
    if (c !== call || FINAL.has(c.state)) return;
    sendFrame('answer', { sdp: c.pc.localDescription.sdp }, c);
    flushLocalCandidates(c);
  } catch (e) {
    hangup(c, `Could not answer the call: ${e.message || e}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Signalling frames

function onSignal(f, signal, data) {
  const c = call;
  if (!c || FINAL.has(c.state) || String(f.from) !== c.peer) return;
  if (f.call_id && c.id && f.call_id !== c.id) return;
  if (signal === 'offer' && c.direction === 'in') {
    if (typeof data.sdp !== 'string') return;
    c.remoteOffer = data.sdp;
    answerIfReady(c);
  } else if (signal === 'answer' && c.direction === 'out') {
    if (typeof data.sdp !== 'string' || !c.pc) return;
    c.pc
      .setRemoteDescription({ type: 'answer', sdp: data.sdp })
      .then(() => addRemoteCandidates(c))
      .catch((e) => hangup(c, `The call could not be set up: ${e.message || e}`));
  } else if (signal === 'candidate' || signal === 'ice') {
    if (data.candidate && typeof data.candidate === 'object') {
      c.remoteCandidates.push(data.candidate);
      addRemoteCandidates(c);
    }
  } else if (signal === 'ringing' && c.direction === 'out' && c.state === 'ringing') {
    setStatus(c, 'Ringing…');
  }
}

async function addRemoteCandidates(c) {
  if (!c.pc || !c.pc.remoteDescription) return;
  while (c.remoteCandidates.length) {
    const cand = c.remoteCandidates.shift();
    try {
      await c.pc.addIceCandidate(cand);
    } catch {
      // A candidate this browser cannot use (other address family, stale): ICE goes on without it.
    }
  }
}

function onCallState(f) {
  const st = f.state;
  const c = call;
  // The first answer to our call_start names the call: `ringing`, or `busy` at once.
  if (c && c.direction === 'out' && !c.id && c.state === 'starting' && f.call_id
      && (String(f.from) === c.peer || String(f.to) === c.peer)) {
    c.id = f.call_id;
    if (st === 'ringing') {
      setState(c, 'ringing', 'Calling…');
      sendOffer(c);
      return;
    }
  }
  if (!c || !f.call_id || f.call_id !== c.id || FINAL.has(c.state)) {
    // A call this device never showed, e.g. refused at once because we were busy elsewhere.
    const me = String(meUid());
    const other = String(f.from) === me ? String(f.to) : String(f.from);
    if (st === 'missed' && other !== me && !(c && c.id === f.call_id)) {
      toast(`Missed call from ${nameOf(other)}`);
    }
    return;
  }
  const out = c.direction === 'out';
  switch (st) {
    case 'accepted':
      if (c.state === 'ringing' || c.state === 'accepting' || c.state === 'incoming') {
        setState(c, 'accepted', 'Connecting…');
      }
      break;
    case 'connected':
      if (c.state !== 'connected') {
        c.connectedAt = Date.now();
        setState(c, 'connected', 'Connected');
        tickDuration(c);
      }
      break;
    case 'answered_elsewhere':
      finish(c, 'answered_elsewhere', 'Answered on another device');
      break;
    case 'rejected':
      finish(c, 'rejected', out ? `${nameOf(c.peer)} declined the call` : 'Declined');
      break;
    case 'missed':
      finish(c, 'missed', out ? 'No answer' : `Missed call from ${nameOf(c.peer)}`);
      break;
    case 'busy':
      finish(c, 'busy', `${nameOf(c.peer)} is busy`);
      break;
    case 'ended': {
      const why = {
        connection_lost: 'Call ended: connection lost',
        session_revoked: 'Call ended: session signed out',
      }[f.reason];
      finish(c, 'ended', why || 'Call ended');
      break;
    }
    default:
      break;
  }
}

function onErrorFrame(f) {
  const c = call;
  if (!c || FINAL.has(c.state)) return;
  if (c.startRef && f.ref === c.startRef) {
    const msg =
      f.reason === 'call_in_progress'
        ? 'You are already in a call on another device.'
        : f.reason === 'not_a_contact'
          ? 'You can only call accepted contacts.'
          : f.message || 'The call could not be started.';
    fail(c, msg);
  } else if (c.acceptRef && f.ref === c.acceptRef && f.reason === 'call_not_found') {
    // Our accept lost the race against another device (answered_elsewhere follows) or the
    // caller gave up.
    finish(c, 'answered_elsewhere', 'Answered on another device');
  }
}

// ---------------------------------------------------------------------------------------------
// The peer connection

/** GET /ice_servers, kept until shortly before its `ttl` runs out (the TURN credentials in it
 * expire then); a failed fetch or a call that could not connect asks again next time. */
let iceCache = null; // {uid, until (ms), value}
const ICE_MARGIN_MIN_S = 60;

async function iceServers() {
  const uid = app.me && app.me.uid;
  if (iceCache && iceCache.uid === uid && Date.now() < iceCache.until) return iceCache.value;
  iceCache = null;
  const r = await app.api.request('GET', '/ice_servers');
  const ttl = Number(r && r.ttl);
  if (Number.isFinite(ttl) && ttl > 0) {
    // Ten per cent of the ttl (at least a minute) before the credentials expire.
    const keep = ttl - Math.max(ICE_MARGIN_MIN_S, ttl / 10);
    if (keep > 0) iceCache = { uid, until: Date.now() + keep * 1000, value: r };
  }
  return r;
}

/** Forgets the ICE servers (after a call that could not connect, at logout). */
function dropIceServers() {
  iceCache = null;
}

async function preparePeer(c) {
  const r = await iceServers();
  if (c !== call || FINAL.has(c.state)) return;
  const relay = relayOnly();
  const servers = (r && Array.isArray(r.ice_servers) ? r.ice_servers : []).filter(
    (s) => !relay || [].concat(s.urls).some((u) => /^turns?:/.test(u)),
  );
  if (relay && servers.length === 0) {
    throw new Error('Relay-only calls are on, but this server offers no TURN relay.');
  }
  c.relay = relay;
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  if (c !== call || FINAL.has(c.state)) {
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  c.localStream = stream;
  const pc = new RTCPeerConnection({
    iceServers: servers,
    iceTransportPolicy: relay ? 'relay' : 'all',
  });
  c.pc = pc;
  for (const t of stream.getAudioTracks()) pc.addTrack(t, stream);
  pc.onicecandidate = (e) => {
    if (!e.candidate || !e.candidate.candidate) return;
    c.localCandidates.push(e.candidate.toJSON());
    if (c.canSendCandidates) flushLocalCandidates(c);
  };
  pc.ontrack = (e) => {
    const audio = panel().querySelector('audio');
    if (!audio) return;
    audio.srcObject = e.streams[0] || new MediaStream([e.track]);
    const p = audio.play();
    // Autoplay refused (no user gesture yet): play on the next click anywhere.
    if (p && p.catch) {
      p.catch(() => document.addEventListener('click', () => audio.play().catch(() => {}), { once: true }));
    }
  };
  pc.onconnectionstatechange = () => {
    if (c !== call || FINAL.has(c.state)) return;
    const s = pc.connectionState;
    if (s === 'connected') {
      if (!c.sentConnected) {
        c.sentConnected = true;
        sendFrame('call_connected', {}, c);
      }
      if (c.state === 'connected') setStatus(c, 'Connected');
    } else if (s === 'disconnected' && c.state === 'connected') {
      setStatus(c, 'Reconnecting…');
    } else if (s === 'failed') {
      dropIceServers(); // expired or refused TURN credentials: fetch fresh ones for the next call
      hangup(
        c,
        c.relay
          ? 'The call could not connect through the relay server.'
          : 'The call could not connect (network).',
      );
    }
  };
  c.statsTimer = setInterval(() => updateStats(c), STATS_INTERVAL_MS);
}

function flushLocalCandidates(c) {
  c.canSendCandidates = true;
  while (c.localCandidates.length) {
    sendFrame('candidate', { candidate: c.localCandidates.shift() }, c);
  }
}

async function updateStats(c) {
  if (!c.pc || c !== call) return;
  let report;
  try {
    report = await c.pc.getStats();
  } catch {
    return;
  }
  let received = 0;
  let sent = 0;
  let pairId = null;
  const byId = new Map();
  report.forEach((s) => {
    byId.set(s.id, s);
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'audio') received += s.bytesReceived || 0;
    if (s.type === 'outbound-rtp' && (s.kind || s.mediaType) === 'audio') sent += s.bytesSent || 0;
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  if (!pairId) {
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pairId = s.id;
    });
  }
  const pair = pairId && byId.get(pairId);
  const local = pair && byId.get(pair.localCandidateId);
  const remote = pair && byId.get(pair.remoteCandidateId);
  let route = '';
  if (local) route = local.candidateType === 'relay' || (remote && remote.candidateType === 'relay') ? 'relay' : local.candidateType || '';
  c.stats = { received, sent, route };
  renderStats(c);
}

// ---------------------------------------------------------------------------------------------
// Ending

/** Ends the call from this side (hang-up button, errors): tells the server, then cleans up. */
function hangup(c, message) {
  if (c !== call || FINAL.has(c.state)) return;
  if (c.signalled) sendFrame('hangup', {}, c);
  if (message) finish(c, 'failed', message);
  else if (c.state === 'starting' || c.state === 'ringing') finish(c, 'ended', 'Call cancelled');
  else finish(c, 'ended', 'Call ended');
}

/** A local failure before the server knew of the call. */
function fail(c, message) {
  if (c.signalled) sendFrame('hangup', {}, c);
  finish(c, 'failed', message);
}

function finish(c, state, text) {
  if (c !== call || FINAL.has(c.state)) return;
  const p = panel();
  const hadFocus = p.contains(document.activeElement) || document.activeElement === document.body;
  setState(c, state, text);
  cleanup(c);
  const close = p.querySelector('#call-close');
  if (close && hadFocus) close.focus();
}

function cleanup(c) {
  clearInterval(c.statsTimer);
  clearInterval(c.durationTimer);
  if (c.pc) {
    // One last reading so the panel keeps the final totals.
    updateStats(c).finally(() => {
      try {
        c.pc.close();
      } catch {
        // already closed
      }
    });
  }
  if (c.localStream) c.localStream.getTracks().forEach((t) => t.stop());
  const audio = panel().querySelector('audio');
  if (audio) audio.srcObject = null;
}

// ---------------------------------------------------------------------------------------------
// The panel

function newCall(peer, direction, id) {
  if (call) cleanup(call);
  call = {
    id,
    peer,
    direction,
    state: 'new',
    pc: null,
    localStream: null,
    remoteOffer: null,
    remoteCandidates: [],
    localCandidates: [],
    canSendCandidates: false,
    answered: false,
    signalled: false,
    sentConnected: false,
    muted: false,
    relay: false,
    connectedAt: 0,
    stats: null,
    statsTimer: 0,
    durationTimer: 0,
    startRef: null,
    acceptRef: null,
    notified: null,
  };
  renderPanel(call);
  return call;
}

function root() {
  return document.getElementById('call-root');
}

function panel() {
  return (root() && root().querySelector('.call-panel')) || document.createElement('div');
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const ch of children) e.append(ch);
  return e;
}

function renderPanel(c) {
  const r = root();
  if (!r) return;
  const name = nameOf(c.peer);
  const btn = (id, label, cls, fn) => {
    const b = el('button', { type: 'button', id, class: `call-btn ${cls}` }, label);
    b.addEventListener('click', fn);
    return b;
  };
  const p = el(
    'section',
    {
      class: 'call-panel',
      role: 'region',
      'aria-label': `Call with ${name}`,
      'data-call-state': 'new',
      'data-call-direction': c.direction,
      'data-peer': c.peer,
    },
    el('p', { class: 'call-peer' }, name),
    el('p', { class: 'call-status', role: 'status', 'aria-live': 'polite' }, ''),
    el('p', { class: 'call-duration', 'aria-label': 'Call duration' }, ''),
    el('p', { class: 'call-stats', 'data-bytes-received': '0', 'data-bytes-sent': '0', 'data-route': '' }, ''),
    el(
      'div',
      { class: 'call-actions' },
      btn('call-accept', 'Accept', 'call-accept', () => accept(c)),
      btn('call-reject', 'Decline', 'call-danger', () => reject(c)),
      btn('call-mute', 'Mute', 'call-mute', () => toggleMute(c)),
      btn('call-hangup', 'Hang up', 'call-danger', () => hangup(c)),
      btn('call-close', 'Close', 'call-close', () => closePanel(c)),
    ),
    el('audio', { autoplay: true }),
  );
  p.querySelector('#call-mute').setAttribute('aria-pressed', 'false');
  p.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && FINAL.has(c.state)) closePanel(c);
  });
  r.replaceChildren(p);
  r.hidden = false;
}

function setState(c, state, text) {
  if (c !== call) return;
  c.state = state;
  if (state !== 'incoming') dropNotification(c);
  const p = panel();
  p.setAttribute('data-call-state', state);
  if (c.id) p.setAttribute('data-call-id', c.id);
  const show = {
    'call-accept': state === 'incoming',
    'call-reject': state === 'incoming',
    'call-mute': ['accepting', 'accepted', 'connected'].includes(state),
    'call-hangup': ['starting', 'ringing', 'accepting', 'accepted', 'connected'].includes(state),
    'call-close': FINAL.has(state),
  };
  for (const [id, on] of Object.entries(show)) {
    const b = p.querySelector(`#${id}`);
    if (b) b.hidden = !on;
  }
  setStatus(c, text);
}

function setStatus(c, text) {
  if (c !== call) return;
  const s = panel().querySelector('.call-status');
  if (s && text !== undefined) s.textContent = text;
}

function tickDuration(c) {
  const d = panel().querySelector('.call-duration');
  const render = () => {
    if (c !== call || !d) return;
    const secs = Math.floor((Date.now() - c.connectedAt) / 1000);
    const mm = String(Math.floor(secs / 60)).padStart(2, '0');
    const ss = String(secs % 60).padStart(2, '0');
    d.textContent = `${mm}:${ss}`;
  };
  render();
  clearInterval(c.durationTimer);
  c.durationTimer = setInterval(render, 1000);
}

function renderStats(c) {
  const s = panel().querySelector('.call-stats');
  if (!s || !c.stats) return;
  const { received, sent, route } = c.stats;
  if (!received && !sent && !c.connectedAt) return; // never connected: nothing to show
  s.setAttribute('data-bytes-received', String(received));
  s.setAttribute('data-bytes-sent', String(sent));
  s.setAttribute('data-route', route);
  const via = route === 'relay' ? ' · via relay' : route ? ` · direct (${route})` : '';
  s.textContent = `Audio received ${fmtBytes(received)} · sent ${fmtBytes(sent)}${via}`;
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function toggleMute(c) {
  if (!c.localStream) return;
  c.muted = !c.muted;
  c.localStream.getAudioTracks().forEach((t) => {
    t.enabled = !c.muted;
  });
  const b = panel().querySelector('#call-mute');
  b.textContent = c.muted ? 'Unmute' : 'Mute';
  b.setAttribute('aria-pressed', String(c.muted));
}

function closePanel(c) {
  if (c !== call || !FINAL.has(c.state)) return;
  call = null;
  const r = root();
  if (r) {
    r.replaceChildren();
    r.hidden = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Settings

function renderSettings() {
  const box = el('input', { type: 'checkbox', id: 'setting-relay-calls' });
  box.checked = relayOnly();
  box.addEventListener('change', () => setRelayOnly(box.checked));
  const label = el('label', { htmlFor: 'setting-relay-calls' }, 'Relay calls through TURN (hides your IP address)');
  const section = el(
    'div',
    { class: 'card setting-calls' },
    el('h3', {}, 'Calls'),
    el('div', { class: 'setting' }, box, label),
    el('p', { class: 'muted' }, 'Calls then connect only through the server\'s relay, so the other side never sees your address. It can add a little delay.'),
  );
  if (typeof app.addSettingsSection === 'function') app.addSettingsSection(section);
  else {
    const host = document.getElementById('settings-features');
    if (host) host.append(section);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function sendFrame(type, extra = {}, c = call) {
  const f = { type, target: c.peer, ...extra };
  if (c.id) f.call_id = c.id;
  try {
    return app.socket.send(f);
  } catch {
    return null;
  }
}

function meUid() {
  return app.me ? app.me.uid : null;
}

function nameOf(uid) {
  try {
    const c = app.contacts && (app.contacts.get ? app.contacts.get(uid) : app.contacts[uid]);
    if (c) return c.nickname || c.name || uid;
  } catch {
    // fall through
  }
  return uid;
}

function toast(text) {
  if (app.ui && typeof app.ui.toast === 'function') {
    app.ui.toast(text, { timeout: 10000 });
    return;
  }
  const t = document.getElementById('toast');
  if (t) t.textContent = text;
}

function mediaError(e) {
  const n = e && e.name;
  if (n === 'NotAllowedError') return 'Microphone access was denied. Allow it in the browser to call.';
  if (n === 'NotFoundError') return 'No microphone was found.';
  if (e && e.status) return e.message || 'The server refused the call.';
  return `The call could not start: ${(e && e.message) || e}`;
}
