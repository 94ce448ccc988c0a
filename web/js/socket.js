// WebSocket connection to Melo (§5 of the protocol).
// Contract: new Socket(wsUrl /* URL of .../ws */, {getToken, onTokenExpired});
//   socket.on(type, fn) / socket.off(type, fn): fn(frame) for server frame `type`
//     (may be async: durable frames are acked only after every handler has settled);
//   connection events: 'open', 'close' ({code, reason}), 'state' ({state}), 'sync_done' (the frame),
//     'replaced' (another tab of this device took over), 'auth_failed' ({reason}), '*' (every frame);
//   socket.send(frame, {queue}) -> client_id (added when absent). Frames sent while the socket is
//     not open are kept and sent on open when `queue` is true (default for relay/chat_message:
//     the server dedupes them by client_id), dropped otherwise (typing, presence, calls);
//   socket.connect(), socket.close(), socket.state ('idle'|'connecting'|'open'|'closed').
// Durable frames (with `seq`) are deduplicated by seq and by message_id (relay_delivery) and
// acknowledged with ack_received after the handlers ran. The dedupe sets keep the newest SEEN_MAX.
// Reconnects back off exponentially with jitter (capped at 30 s); the attempt counter is reset only
// after sync_done (the server completes the upgrade before refusing a connection). Closes with
// origin_not_allowed are fatal ('fatal' event with {code, reason}). A handler that throws is
// reported to onError(where, error).

const QUEUEABLE = new Set(['relay', 'chat_message']);
const SEEN_MAX = 5000;
const FATAL = new Set(['origin_not_allowed']);

/** A Set that forgets its oldest entries beyond `max` (insertion order). */
function remember(set, value, max = SEEN_MAX) {
  set.add(value);
  if (set.size > max) {
    const drop = set.size - max;
    let i = 0;
    for (const v of set) {
      if (i >= drop) break;
      set.delete(v);
      i += 1;
    }
  }
}

let counter = 0;
export function newClientId(prefix = 'w') {
  counter += 1;
  const rnd = crypto.getRandomValues(new Uint32Array(2));
  return `${prefix}-${Date.now().toString(36)}-${rnd[0].toString(36)}${rnd[1].toString(36)}-${counter}`;
}

export class Socket {
  constructor(wsUrl, { getToken, onTokenExpired, onError } = {}) {
    this.onError = onError || ((where, e) => console.warn(where, e));
    this.wsUrl = new URL(wsUrl);
    this.getToken = getToken || (() => null);
    this.onTokenExpired = onTokenExpired || null;
    this.handlers = new Map();
    this.ws = null;
    this.state = 'idle';
    this.outbox = [];
    this.seenSeq = new Set();
    this.seenMessages = new Set();
    this.chain = Promise.resolve();
    this.attempt = 0;
    this.timer = null;
    this.pingTimer = null;
    this.wanted = false;
    this.synced = false;
    /** Increases with every opened connection (lets callers resend what a lost one may have dropped). */
    this.connId = 0;
    window.addEventListener('online', () => { if (this.wanted && this.state !== 'open') this.reconnectSoon(0); });
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) { this.handlers.get(type)?.delete(fn); }

  async emit(type, arg) {
    const set = this.handlers.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        await fn(arg);
      } catch (e) {
        this.onError(`socket handler for ${type} failed`, e);
      }
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  connect() {
    this.wanted = true;
    clearTimeout(this.timer);
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
    const token = this.getToken();
    if (!token) return;
    const url = new URL(this.wsUrl);
    url.searchParams.set('token', token);
    this.setState('connecting');
    this.synced = false;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this.reconnectSoon();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.connId += 1;
      this.setState('open');
      const pending = this.outbox;
      this.outbox = [];
      for (const f of pending) ws.send(JSON.stringify(f));
      this.emit('open');
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: 'ping' }, { queue: false }), 30000);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (!frame || typeof frame.type !== 'string') return;
      this.chain = this.chain.then(() => this.dispatch(frame, ws));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      this.setState('closed');
      this.emit('close', { code: ev.code, reason: ev.reason });
      this.afterClose(ev.code, ev.reason);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  async afterClose(code, reason) {
    if (!this.wanted) return;
    if (code === 4001 || reason === 'replaced') {
      this.wanted = false;
      this.emit('replaced', { code, reason });
      return;
    }
    if (FATAL.has(reason)) {
      this.wanted = false;
      this.emit('fatal', { code, reason });
      return;
    }
    if ((reason === 'token_expired' || reason === 'invalid_token') && this.onTokenExpired) {
      // onTokenExpired resolves true (new token), false (temporary failure: keep trying) or
      // 'ended' (the refresh got a definite 401: the session is over).
      let ok = false;
      try { ok = await this.onTokenExpired(); } catch { ok = false; }
      if (ok === true) { this.reconnectSoon(0); return; }
      if (ok !== 'ended') { this.reconnectSoon(); return; }
    }
    if (['token_revoked', 'invalid_token', 'unauthenticated', 'token_expired'].includes(reason)) {
      this.wanted = false;
      this.emit('auth_failed', { code, reason });
      return;
    }
    this.reconnectSoon();
  }

  reconnectSoon(delay) {
    clearTimeout(this.timer);
    if (!this.wanted) return;
    // 0.5 s, 1 s, 2 s, … with ±25 % jitter, never more than 30 s.
    const d = delay ?? Math.min(30000, 500 * 2 ** Math.min(this.attempt, 6) * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), d);
  }

  async dispatch(frame, ws) {
    const seq = Number.isInteger(frame.seq) ? frame.seq : null;
    if (seq !== null) {
      const mkey = frame.type === 'relay_delivery' && frame.message_id ? frame.message_id : null;
      if (this.seenSeq.has(seq) || (mkey && this.seenMessages.has(mkey))) {
        this.ack(ws, seq);
        return;
      }
      await this.emit(frame.type, frame);
      await this.emit('*', frame);
      remember(this.seenSeq, seq);
      if (mkey) remember(this.seenMessages, mkey);
      this.ack(ws, seq);
      return;
    }
    if (frame.type === 'sync_done') {
      this.synced = true;
      this.attempt = 0;
    }
    await this.emit(frame.type, frame);
    await this.emit('*', frame);
  }

  ack(ws, seq) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'ack_received', seq }));
  }

  send(frame, { queue } = {}) {
    const f = { ...frame };
    if (!f.client_id) f.client_id = newClientId();
    const q = queue ?? QUEUEABLE.has(f.type);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(f));
    } else if (q) {
      this.outbox.push(f);
      if (this.wanted) this.connect();
    }
    return f.client_id;
  }

  /** Sends and resolves with the first frame for which `match(frame)` is true (or rejects on `error` with ref). */
  request(frame, types, match, timeoutMs = 20000) {
    return new Promise((resolve, reject) => {
      let clientId;
      const offs = [];
      const done = (fn, v) => { offs.forEach((o) => o()); clearTimeout(t); fn(v); };
      const t = setTimeout(() => done(reject, new Error('The server did not answer in time.')), timeoutMs);
      for (const type of types) {
        offs.push(this.on(type, (f) => { if (match(f, clientId)) done(resolve, f); }));
      }
      offs.push(this.on('error', (f) => {
        if (f.ref === clientId) {
          const e = new Error(f.message || f.reason);
          e.code = f.reason;
          done(reject, e);
        }
      }));
      clientId = this.send(frame, { queue: true });
    });
  }

  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    clearInterval(this.pingTimer);
    this.outbox = [];
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(1000, 'bye'); } catch { /* ignore */ }
    }
    this.setState('idle');
  }

  /** Forget dedupe state (a different account or device logs in). */
  reset() {
    this.seenSeq.clear();
    this.seenMessages.clear();
    this.chain = Promise.resolve();
  }
}
