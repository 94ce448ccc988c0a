// REST client for the Melo API (relative to the app's base: /app/ -> ../).
// Contract: new Api(baseUrl); api.token; api.csrf;
//   await api.request(method, path, {body, query, csrf=false, form}) -> parsed JSON or null
//   throws ApiError {status, code, message, retryAfter, fields}
//   more options: retry (wait out a 429 block and retry; default for GET), auth=false (no token)
// `code` is the protocol's stable `reason` (e.g. "not_a_contact"); `message` is the server's text.
// Rate limits: a 429 `rate_limited` blocks this client until now + Retry-After (one gate for all
// requests). While blocked nothing is sent: GETs (and requests made with {retry: true}, safe to
// repeat because a refused request was not processed) wait and retry, for at most RETRY_BUDGET_MS
// in total; other requests fail fast with ApiError 429 `rate_limited` and `retryAfter`.
// api.onRateLimit(untilMs) is called when a block starts (0 when it is over). Every fetch times out
// after REQUEST_TIMEOUT_MS (ApiError 0 `timeout`).

const REQUEST_TIMEOUT_MS = 30000;
const RETRY_BUDGET_MS = 120000;
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null, fields = null, path = null } = {}) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.fields = fields;
    this.path = path;
  }

  /** A human sentence, with field problems for 422s. */
  describe() {
    if (this.fields && this.fields.length) {
      return `${this.message}: ${this.fields.map((f) => `${f.field} ${f.problem}`).join('; ')}`;
    }
    if (this.code === 'rate_limited' && this.status === 429) {
      return `Rate limited — try again in ${this.retryAfter || 1} s`;
    }
    if (this.retryAfter) return `${this.message} (retry in ${this.retryAfter} s)`;
    return this.message;
  }
}

export class Api {
  constructor(baseUrl) {
    this.baseUrl = new URL(baseUrl);
    this.token = null;
    this.csrf = null;
    /** Called with the ApiError when an authenticated request gets a 401 (token revoked/expired). */
    this.onUnauthorized = null;
    /** Optional async hook tried once on 401 token_expired; returns true when a new token is set. */
    this.refreshToken = null;
    /** Epoch ms until which the server refuses this client (429 rate_limited); 0 when not blocked. */
    this.blockedUntil = 0;
    /** How many 429 rate_limited answers this page got (diagnostics). */
    this.rateLimited = 0;
    /** Called with blockedUntil when a block starts and with 0 when it is over. */
    this.onRateLimit = null;
    this.unblockTimer = null;
  }

  block(seconds) {
    const until = Date.now() + Math.max(1, Number(seconds) || 1) * 1000;
    if (until <= this.blockedUntil) return;
    this.blockedUntil = until;
    clearTimeout(this.unblockTimer);
    this.unblockTimer = setTimeout(() => {
      if (Date.now() >= this.blockedUntil) {
        this.blockedUntil = 0;
        this.onRateLimit?.(0);
      }
    }, until - Date.now() + 50);
    this.onRateLimit?.(until);
  }

  blockedError() {
    const secs = Math.max(1, Math.ceil((this.blockedUntil - Date.now()) / 1000));
    return new ApiError(429, 'rate_limited', 'Too many requests', { retryAfter: secs });
  }

  url(path, query) {
    const url = new URL(path.replace(/^\/+/, ''), this.baseUrl);
    if (query) {
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
      }
    }
    return url;
  }

  async request(method, path, opts = {}) {
    const waits = opts.retry ?? (method === 'GET');
    const started = Date.now();
    for (;;) {
      const now = Date.now();
      if (now < this.blockedUntil) {
        if (!waits || this.blockedUntil - started > RETRY_BUDGET_MS) throw this.blockedError();
        await sleep(this.blockedUntil - now + 100 + Math.random() * 400);
        continue;
      }
      try {
        return await this.send(method, path, opts);
      } catch (e) {
        if (!(e instanceof ApiError && e.code === 'rate_limited' && e.status === 429)) throw e;
        this.rateLimited += 1;
        this.block(e.retryAfter || 1);
        if (!waits) throw e;
      }
    }
  }

  async send(method, path, { body, query, csrf = false, form, retried = false, auth = true, token } = {}) {
    const headers = { Accept: 'application/json' };
    // `token`: this request's own token (a logout that may wait out a 429 after the local session
    // is already gone).
    const usedToken = auth ? (token ?? this.token) : null;
    if (usedToken) headers.Authorization = `Bearer ${usedToken}`;
    let payload;
    if (form) {
      payload = form;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(csrf && this.csrf ? { ...body, csrf_token: this.csrf } : body);
    } else if (csrf && this.csrf && method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify({ csrf_token: this.csrf });
    }
    if (csrf && this.csrf) headers['X-CSRF-Token'] = this.csrf;
    let res;
    try {
      res = await fetch(this.url(path, query), {
        method, headers, body: payload, credentials: 'omit', cache: 'no-store',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (e) {
      if (e && e.name === 'TimeoutError') throw new ApiError(0, 'timeout', 'The server did not answer in time.');
      throw new ApiError(0, 'network_error', 'The server cannot be reached. Check your connection.');
    }
    let data = null;
    let text = '';
    try {
      text = await res.text();
    } catch (e) {
      if (e && e.name === 'TimeoutError') throw new ApiError(0, 'timeout', 'The server did not answer in time.');
      throw new ApiError(0, 'network_error', 'The server cannot be reached. Check your connection.');
    }
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (res.ok) return data;
    const err = data && data.error && typeof data.error === 'object' ? data.error : {};
    const retryHeader = res.headers.get('Retry-After');
    const error = new ApiError(res.status, err.reason || (typeof data?.error === 'string' ? data.error : 'http_error'),
      err.message || `Request failed (HTTP ${res.status})`, {
        retryAfter: err.retry_after ?? (retryHeader ? Number(retryHeader) : null),
        fields: err.fields || null,
        path: err.path || null,
      });
    if (!retried && error.code === 'csrf_invalid' && csrf && this.token) {
      // The CSRF token rotates on every login of the session: fetch the current one and retry once.
      const fresh = await this.request('GET', '/csrf_token');
      this.csrf = fresh?.csrf_token || this.csrf;
      return this.send(method, path, { body, query, csrf, form, retried: true });
    }
    if (!retried && error.code === 'token_expired' && this.refreshToken) {
      if ((await this.refreshToken()) === true) return this.send(method, path, { body, query, csrf, form, retried: true });
    }
    if (res.status === 401 && usedToken && usedToken === this.token && this.onUnauthorized && !path.startsWith('/login')) {
      this.onUnauthorized(error);
    }
    throw error;
  }

  get(path, query) { return this.request('GET', path, { query }); }
  post(path, body, opts = {}) { return this.request('POST', path, { ...opts, body: body ?? {} }); }
  put(path, body, opts = {}) { return this.request('PUT', path, { ...opts, body: body ?? {} }); }
  del(path, opts = {}) { return this.request('DELETE', path, opts); }
}
