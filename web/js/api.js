// REST client for the Melo API (relative to the app's base: /app/ -> ../).
// Contract: new Api(baseUrl); api.token; api.csrf;
//   await api.request(method, path, {body, query, csrf=false, form}) -> parsed JSON or null
//   throws ApiError {status, code, message, retryAfter, fields}
// `code` is the protocol's stable `reason` (e.g. "not_a_contact"); `message` is the server's text.

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

  async request(method, path, { body, query, csrf = false, form, retried = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
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
      });
    } catch (e) {
      throw new ApiError(0, 'network_error', 'The server cannot be reached. Check your connection.');
    }
    let data = null;
    const text = await res.text();
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
      return this.request(method, path, { body, query, csrf, form, retried: true });
    }
    if (!retried && error.code === 'token_expired' && this.refreshToken) {
      if (await this.refreshToken()) return this.request(method, path, { body, query, csrf, form, retried: true });
    }
    if (res.status === 401 && this.token && this.onUnauthorized && !path.startsWith('/login')) {
      this.onUnauthorized(error);
    }
    throw error;
  }

  get(path, query) { return this.request('GET', path, { query }); }
  post(path, body, opts = {}) { return this.request('POST', path, { ...opts, body: body ?? {} }); }
  put(path, body, opts = {}) { return this.request('PUT', path, { ...opts, body: body ?? {} }); }
  del(path, opts = {}) { return this.request('DELETE', path, opts); }
}
