// IndexedDB persistence (one database per browser profile).
// Stores: 'kv' (key -> value), 'keys' (uid -> {privateKey: CryptoKey (non-extractable), publicKeyPem}),
//         'messages' (message_id -> message record; index 'conv' on `conv` = "dm:<uid>" | "chat:<id>"),
//         'pins' ("<my uid>|<contact uid>" -> {fingerprint, changed, changedAt}: keypins.js; cleared on logout).
// Contract: await openStore({onBlocked, onVersionChange}) -> Store with get/put/delete(storeName, key[, value]),
//   messagesFor(conv), putMessage(rec), clearUserData().

const DB_NAME = 'melo';
const DB_VERSION = 2;

function promisify(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class Store {
  constructor(db) { this.db = db; }

  tx(name, mode = 'readonly') { return this.db.transaction(name, mode).objectStore(name); }

  get(name, key) { return promisify(this.tx(name).get(key)); }

  put(name, value, key) {
    const os = this.tx(name, 'readwrite');
    return promisify(key === undefined ? os.put(value) : os.put(value, key));
  }

  delete(name, key) { return promisify(this.tx(name, 'readwrite').delete(key)); }

  getAll(name) { return promisify(this.tx(name).getAll()); }

  async messagesFor(conv) {
    const idx = this.tx('messages').index('conv');
    const all = await promisify(idx.getAll(IDBKeyRange.only(conv)));
    all.sort((a, b) => (a.message_id < b.message_id ? -1 : a.message_id > b.message_id ? 1 : 0));
    return all;
  }

  putMessage(rec) { return this.put('messages', rec); }

  getMessage(id) { return this.get('messages', id); }

  /** Removes cached messages and settings of the logged-out account (keys stay: they are non-extractable). */
  async clearUserData() {
    await promisify(this.tx('messages', 'readwrite').clear());
    await promisify(this.tx('kv', 'readwrite').clear());
    // Pins name the user's contacts: a shared computer must not keep the contact list after a
    // logout. The next login pins again on first use.
    await promisify(this.tx('pins', 'readwrite').clear());
  }
}

export async function openStore({ onBlocked, onVersionChange } = {}) {
  const req = indexedDB.open(DB_NAME, DB_VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    if (!db.objectStoreNames.contains('kv')) db.createObjectStore('kv');
    if (!db.objectStoreNames.contains('keys')) db.createObjectStore('keys');
    if (!db.objectStoreNames.contains('pins')) db.createObjectStore('pins');
    if (!db.objectStoreNames.contains('messages')) {
      const os = db.createObjectStore('messages', { keyPath: 'message_id' });
      os.createIndex('conv', 'conv');
    }
  };
  // An older page of this profile keeps the previous version open: the upgrade waits for it.
  req.onblocked = () => onBlocked?.();
  const db = await promisify(req);
  // A newer page needs an upgrade: let it through; this page must be reloaded.
  db.onversionchange = () => { db.close(); onVersionChange?.(); };
  return new Store(db);
}
