// Settings: profile summary, key fingerprint, sessions (list, revoke one, revoke all others), log out.
// DOM hooks: #sessions-list li[data-session-id][data-current], button[data-action="revoke"], #revoke-all, #logout-btn.

import { h, clear } from './ui.js';
import { fingerprint } from './keypins.js';

let app;

export function setup(a) {
  app = a;
  document.getElementById('nav-settings').addEventListener('click', () => {
    app.ui.showView('settings');
    renderProfile();
    loadSessions();
  });
  document.getElementById('sessions-refresh').addEventListener('click', (e) => app.ui.busy(e.currentTarget, loadSessions));
  const all = document.getElementById('revoke-all');
  all.addEventListener('click', async () => {
    if (all.dataset.confirm !== 'yes') {
      all.dataset.confirm = 'yes';
      all.textContent = 'Confirm: log out all other sessions';
      return;
    }
    delete all.dataset.confirm;
    all.textContent = 'Log out all other sessions';
    await app.ui.busy(all, async () => {
      try {
        const res = await app.api.post('/sessions/revoke_all', {});
        app.ui.toast(`${res?.revoked_count ?? 0} other sessions logged out.`);
        await loadSessions();
      } catch (e) {
        app.ui.toast(app.ui.errorText(e), { error: true });
      }
    });
  });
  const out = document.getElementById('logout-btn');
  out.addEventListener('click', () => app.ui.busy(out, () => app.logout()));
  app.on('logout', () => clear(document.getElementById('sessions-list')));
}

async function renderProfile() {
  const me = app.me;
  if (!me) return;
  document.getElementById('profile-uid').textContent = me.uid;
  document.getElementById('profile-name').textContent = me.name || '';
  document.getElementById('profile-nickname').textContent = me.nickname || '';
  document.getElementById('profile-phone').textContent = me.phone || '';
  try {
    document.getElementById('profile-fingerprint').textContent = await fingerprint(app.e2e.publicKeyPem);
  } catch {
    document.getElementById('profile-fingerprint').textContent = '';
  }
}

async function loadSessions() {
  const loading = document.getElementById('sessions-loading');
  const list = document.getElementById('sessions-list');
  loading.hidden = false;
  try {
    const res = await app.api.get('/sessions');
    clear(list);
    for (const s of res?.sessions || []) list.append(renderSession(s));
    if (!list.children.length) list.append(h('li', { class: 'muted' }, 'No active sessions.'));
  } catch (e) {
    app.ui.toast(`Sessions could not be loaded: ${app.ui.errorText(e)}`, { error: true });
  } finally {
    loading.hidden = true;
  }
}

/** "Chrome on Linux" from a User-Agent (the full string stays in the title). */
function deviceLabel(ua) {
  if (!ua) return '';
  const browser = [['Edg/', 'Edge'], ['Firefox/', 'Firefox'], ['OPR/', 'Opera'], ['HeadlessChrome/', 'Chrome (headless)'],
    ['Chrome/', 'Chrome'], ['Safari/', 'Safari']].find(([k]) => ua.includes(k))?.[1];
  const os = [['Android', 'Android'], ['iPhone', 'iPhone'], ['iPad', 'iPad'], ['Windows', 'Windows'], ['Mac OS X', 'macOS'],
    ['CrOS', 'ChromeOS'], ['Linux', 'Linux']].find(([k]) => ua.includes(k))?.[1];
  if (!browser && !os) return ua.slice(0, 60);
  return [browser || 'Browser', os].filter(Boolean).join(' on ');
}

function renderSession(s) {
  const when = s.last_activity ? `active ${app.ui.formatTime(s.last_activity)}` : '';
  const li = h('li', { dataset: { sessionId: String(s.id), deviceId: s.device_id || '', current: String(!!s.is_current) } },
    h('span', { class: 'grow' },
      h('strong', {}, s.device_type || 'device'), s.is_current ? h('span', { class: 'badge current-badge' }, 'this device') : null,
      h('br'), h('span', { class: 'muted session-name', title: s.device_name || '' }, deviceLabel(s.device_name)),
      h('br'), h('span', { class: 'muted' }, [s.ip_address, when].filter(Boolean).join(' · '))));
  if (!s.is_current) {
    const b = h('button', { type: 'button', class: 'danger', dataset: { action: 'revoke' }, 'aria-label': `Log out session ${s.id} (${s.device_type})` }, 'Log out');
    b.addEventListener('click', () => app.ui.busy(b, async () => {
      try {
        await app.api.del(`/sessions/${s.id}`);
        app.ui.toast('Session logged out.');
        li.remove();
      } catch (e) {
        app.ui.toast(app.ui.errorText(e), { error: true });
      }
    }));
    li.append(b);
  }
  return li;
}
