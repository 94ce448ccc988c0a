// End-to-end encryption with WebCrypto.
// User key: RSA-OAEP 2048 / SHA-256. The private key lives in IndexedDB as a NON-extractable
// CryptoKey; a password-wrapped backup (PBKDF2-SHA256 -> AES-GCM-256 over the PKCS#8 key) is kept on
// the server (/e2e/secret_key) so the user's other devices can load it with the password.
// Message payloads (JSON text; binary fields base64):
//   DM:    {"v":1,"ciphertext","iv","encrypted_key","encrypted_key_self"}
//   group: {"v":1,"ciphertext","iv","encrypted_keys":{"<uid>":"<wrapped>"}}   (every member incl. self)
// where ciphertext = AES-GCM-256(plaintext UTF-8) and the AES key is wrapped with RSA-OAEP.
// Contract: const e2e = new E2E(store);
//   await e2e.generate() -> {publicKeyPem}   (new key pair; call saveLocal(uid) and backup(password))
//   await e2e.loadLocal(uid) -> boolean; await e2e.saveLocal(uid);
//   await e2e.backup(password) -> ciphertext string (only right after generate());
//   await e2e.restore(ciphertext, password) -> {publicKeyPem}   (throws on a wrong password)
//   e2e.publicKeyPem; e2e.uid;
//   await e2e.encryptFor(recipients /* [{uid, publicKeyPem}] */, text, {group=false}) -> payload string
//   await e2e.decrypt(payload) -> text (throws when this user has no key in the payload)

// New backups use 600000 PBKDF2 iterations; backups are read with 100000..2000000 (the count is
// stored next to the ciphertext, which the server could edit).
const PBKDF2_ITERATIONS = 600000;
const MIN_ITERATIONS = 100000;
const MAX_ITERATIONS = 2000000;
const RSA = { name: 'RSA-OAEP', hash: 'SHA-256' };
const enc = new TextEncoder();
const dec = new TextDecoder();

export function b64(buf) {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function unb64(str) {
  const s = atob(str.replace(/-/g, '+').replace(/_/g, '/').replace(/\s+/g, ''));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i += 1) out[i] = s.charCodeAt(i);
  return out;
}

function toPem(der, label) {
  const body = b64(der).replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

function derLength(n) {
  if (n < 0x80) return [n];
  const bytes = [];
  while (n > 0) { bytes.unshift(n & 0xff); n >>= 8; }
  return [0x80 | bytes.length, ...bytes];
}

/** Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (WebCrypto imports SPKI only). */
function pkcs1ToSpki(pkcs1) {
  const algId = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
  const bitString = [0x03, ...derLength(pkcs1.length + 1), 0x00, ...pkcs1];
  const inner = [...algId, ...bitString];
  return new Uint8Array([0x30, ...derLength(inner.length), ...inner]);
}

function pemToSpki(pem) {
  const m = /-----BEGIN ([A-Z ]+)-----([\s\S]*?)-----END \1-----/.exec(pem || '');
  if (!m) throw new Error('Not a PEM public key');
  const der = unb64(m[2]);
  return m[1] === 'RSA PUBLIC KEY' ? pkcs1ToSpki(der) : der;
}

function parsePayload(payload) {
  if (typeof payload !== 'string' || !payload) throw new Error('Empty payload');
  const text = payload.trim().startsWith('{') ? payload : dec.decode(unb64(payload));
  const obj = JSON.parse(text);
  if (!obj || typeof obj !== 'object' || typeof obj.ciphertext !== 'string') throw new Error('Not an encrypted payload');
  return obj;
}

export class E2E {
  constructor(store) {
    this.store = store;
    this.privateKey = null;
    this.publicKeyPem = null;
    this.uid = null;
    this.pending = null; // PKCS#8 bytes kept only between generate() and backup()
    this.keyCache = new Map();
  }

  get ready() { return !!this.privateKey; }

  async generate() {
    const pair = await crypto.subtle.generateKey(
      { ...RSA, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, true, ['encrypt', 'decrypt'],
    );
    const spki = await crypto.subtle.exportKey('spki', pair.publicKey);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
    this.privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, RSA, false, ['decrypt']);
    this.publicKeyPem = toPem(spki, 'PUBLIC KEY');
    this.pending = pkcs8;
    return { publicKeyPem: this.publicKeyPem };
  }

  async saveLocal(uid) {
    this.uid = uid;
    await this.store.put('keys', { privateKey: this.privateKey, publicKeyPem: this.publicKeyPem }, uid);
  }

  async loadLocal(uid) {
    const rec = await this.store.get('keys', uid);
    if (!rec || !rec.privateKey) return false;
    this.uid = uid;
    this.privateKey = rec.privateKey;
    this.publicKeyPem = rec.publicKeyPem;
    return true;
  }

  async forgetLocal(uid) {
    await this.store.delete('keys', uid);
    this.clear();
  }

  clear() {
    this.privateKey = null;
    this.publicKeyPem = null;
    this.uid = null;
    if (this.pending) this.pending.fill(0);
    this.pending = null;
  }

  static async deriveKey(password, salt, iterations) {
    const base = await crypto.subtle.importKey('raw', enc.encode(password), 'PBKDF2', false, ['deriveKey']);
    return crypto.subtle.deriveKey(
      { name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, base, { name: 'AES-GCM', length: 256 }, false,
      ['encrypt', 'decrypt'],
    );
  }

  /** Password-wrapped backup of the key generated by generate(); the PKCS#8 copy is wiped afterwards. */
  async backup(password) {
    if (!this.pending) throw new Error('No fresh key to back up');
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const key = await E2E.deriveKey(password, salt, PBKDF2_ITERATIONS);
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, this.pending);
    this.pending.fill(0);
    this.pending = null;
    return JSON.stringify({
      v: 1, alg: 'PBKDF2-SHA256/AES-GCM-256/RSA-OAEP-2048', iter: PBKDF2_ITERATIONS, salt: b64(salt), iv: b64(iv),
      ct: b64(ct), pub: this.publicKeyPem,
    });
  }

  /**
   * Loads a backup made by backup(); the private key is re-imported non-extractable. The public key
   * is derived from the decrypted private key (the backup's `pub` field is outside the ciphertext,
   * so the server could change it, and is ignored).
   */
  async restore(ciphertext, password) {
    let obj;
    try { obj = JSON.parse(ciphertext); } catch { obj = null; }
    if (!obj || obj.v !== 1) throw new Error('Unknown key backup format');
    const iter = Number(obj.iter);
    if (!Number.isInteger(iter) || iter < MIN_ITERATIONS || iter > MAX_ITERATIONS) {
      throw new Error('The key backup has an unsupported iteration count.');
    }
    const key = await E2E.deriveKey(password, unb64(obj.salt), iter);
    let pkcs8;
    try {
      pkcs8 = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(obj.iv) }, key, unb64(obj.ct)));
    } catch {
      throw new Error('The key backup cannot be opened with this password.');
    }
    let publicKeyPem;
    try {
      // Imported extractable once, only to read the public half (n, e) from it.
      const tmp = await crypto.subtle.importKey('pkcs8', pkcs8, RSA, true, ['decrypt']);
      const jwk = await crypto.subtle.exportKey('jwk', tmp);
      const pub = await crypto.subtle.importKey(
        'jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, alg: 'RSA-OAEP-256', ext: true }, RSA, true, ['encrypt'],
      );
      for (const k of ['d', 'p', 'q', 'dp', 'dq', 'qi']) delete jwk[k];
      publicKeyPem = toPem(await crypto.subtle.exportKey('spki', pub), 'PUBLIC KEY');
      this.privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, RSA, false, ['decrypt']);
    } catch {
      throw new Error('The key backup does not contain a usable key.');
    } finally {
      pkcs8.fill(0);
    }
    this.publicKeyPem = publicKeyPem;
    return { publicKeyPem };
  }

  async importPublic(pem) {
    let k = this.keyCache.get(pem);
    if (!k) {
      k = await crypto.subtle.importKey('spki', pemToSpki(pem), RSA, false, ['encrypt']);
      this.keyCache.set(pem, k);
    }
    return k;
  }

  async wrapFor(pem, raw) {
    return b64(await crypto.subtle.encrypt(RSA, await this.importPublic(pem), raw));
  }

  async encryptFor(recipients, text, { group = false } = {}) {
    if (!this.publicKeyPem) throw new Error('No E2E key loaded');
    const aes = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt']);
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', aes));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, aes, enc.encode(text));
    const out = { v: 1, ciphertext: b64(ct), iv: b64(iv) };
    try {
      if (group) {
        out.encrypted_keys = {};
        for (const r of recipients) {
          if (r.publicKeyPem) out.encrypted_keys[r.uid] = await this.wrapFor(r.publicKeyPem, raw);
        }
        if (this.uid) out.encrypted_keys[this.uid] = await this.wrapFor(this.publicKeyPem, raw);
      } else {
        if (recipients.length !== 1 || !recipients[0].publicKeyPem) throw new Error('The contact has no E2E key');
        out.encrypted_key = await this.wrapFor(recipients[0].publicKeyPem, raw);
        out.encrypted_key_self = await this.wrapFor(this.publicKeyPem, raw);
      }
    } finally {
      raw.fill(0);
    }
    return JSON.stringify(out);
  }

  async decrypt(payload) {
    if (!this.privateKey) throw new Error('No E2E key loaded');
    const p = parsePayload(payload);
    const candidates = p.encrypted_keys
      ? [p.encrypted_keys[this.uid]].filter(Boolean)
      : [p.encrypted_key, p.encrypted_key_self].filter(Boolean);
    for (const wrapped of candidates) {
      let raw;
      try {
        raw = await crypto.subtle.decrypt(RSA, this.privateKey, unb64(wrapped));
      } catch {
        continue;
      }
      const aes = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
      const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(p.iv) }, aes, unb64(p.ciphertext));
      return dec.decode(pt);
    }
    throw new Error('This message was not encrypted for this key');
  }
}
