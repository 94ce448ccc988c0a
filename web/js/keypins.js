// Contacts' public keys pinned on first use (IndexedDB store 'pins', key "<my uid>|<contact uid>").
// When a contact's key differs from the pinned one (a `key_changed` frame, or a /contacts reload),
// the new key is pinned with `changed: true`: the contact row and the DM show
// "<name>'s security key changed" until the user dismisses it in the conversation. Sending is not
// blocked. The DM header shows the contact's key fingerprint.
// Contract: setup(app); await check(app, uid, pem) -> {changed, fingerprint};
//   fingerprint(pem) -> 'abcd ef01 …' (first 16 bytes of SHA-256 over the SPKI DER, hex).

import { h, clear } from './ui.js';

export async function fingerprint(pem) {
  const body = (pem || '').replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  if (!body) return '';
  const bin = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bin));
  return [...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('').replace(/(.{4})/g, '$1 ').trim();
}

const pinKey = (app, uid) => `${app.me.uid}|${uid}`;

/** Compares `pem` with the pinned key of `uid` (pinning it when new); marks the contact. */
export async function check(app, uid, pem) {
  if (!app.me || !pem) return { changed: false, fingerprint: '' };
  const fp = await fingerprint(pem);
  const key = pinKey(app, uid);
  let rec = null;
  try { rec = await app.store.get('pins', key); } catch { rec = null; }
  let changed = !!rec?.changed;
  if (!rec || rec.fingerprint !== fp) {
    changed = changed || !!rec;
    try {
      await app.store.put('pins', { fingerprint: fp, changed, changedAt: rec ? new Date().toISOString() : null }, key);
    } catch (e) {
      app.recordError?.('key pin write failed', e);
    }
  }
  const c = app.contacts.get(uid);
  if (c) { c.keyChanged = changed; c.fingerprint = fp; }
  return { changed, fingerprint: fp };
}

async function dismiss(app, uid) {
  const key = pinKey(app, uid);
  const rec = await app.store.get('pins', key);
  if (rec) await app.store.put('pins', { ...rec, changed: false }, key);
  const c = app.contacts.get(uid);
  if (c) c.keyChanged = false;
  app.emit('contacts', app.contacts);
}

let current = null;
let generation = 0;

async function render(app) {
  const mine = ++generation;
  const entry = current;
  const c = entry?.kind === 'dm' && app.me ? app.contacts.get(entry.uid) : null;
  const res = c?.publicKeyPem ? await check(app, entry.uid, c.publicKeyPem) : null;
  if (mine !== generation) return;
  const notice = clear(document.getElementById('conv-key-notice'));
  const fpEl = document.getElementById('conv-fingerprint');
  notice.hidden = true;
  fpEl.hidden = !res;
  fpEl.textContent = res ? `Security key ${res.fingerprint}` : '';
  if (!res) return;
  const name = app.nameOf(entry.uid);
  fpEl.title = `${name}'s key fingerprint: compare it with the one in their settings`;
  if (res.changed) {
    notice.append(
      h('span', { class: 'grow' }, `${name}'s security key changed. Compare the new fingerprint with ${name} before sharing anything sensitive.`),
      h('button', { type: 'button', dataset: { action: 'dismiss-key-notice' }, on: { click: () => dismiss(app, entry.uid) } }, 'OK'),
    );
    notice.hidden = false;
  }
}

export function setup(app) {
  app.on('conversation', (entry) => { current = entry; return render(app); });
  app.on('contacts', () => render(app));
  app.ui.onViewChange((name) => { if (name !== 'conversation') current = null; });
  app.on('logout', () => { current = null; });
}
