// DOM helpers shared by every module (no innerHTML with data: everything goes through h()).
// Contract: h(tag, attrs, ...children) -> Element  (attrs: class, id, text, dataset {..}, aria-*,
//   on: {click: fn}, hidden, disabled, value, type, ... ; children: nodes, strings, arrays, null);
//   ui.toast(message, {error}); ui.showView(name) (main views: a <section data-view="name"> in #main);
//   ui.registerView(name, sectionEl) (feature modules add their own views); ui.currentView;
//   ui.busy(button, promiseFn) (disables the button and shows a spinner while running);
//   ui.errorText(err) (the server's message for an ApiError); ui.formatTime(ts);
//   await ui.confirm({title, text, ok, cancel}) -> true | false (a modal <dialog id="confirm-dialog">).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'value') el.value = v;
    else if (k === 'style') throw new Error('inline styles are not allowed (CSP)');
    else if (k.startsWith('on')) throw new Error('inline handlers are not allowed (CSP)');
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export class Ui {
  constructor() {
    this.toastEl = document.getElementById('toast');
    this.main = document.getElementById('main');
    this.views = new Map();
    this.currentView = null;
    this.listeners = new Set();
    for (const s of this.main.querySelectorAll('section[data-view]')) this.views.set(s.dataset.view, s);
    this.toastTimer = null;
  }

  registerView(name, section) {
    section.dataset.view = name;
    section.hidden = true;
    if (!section.parentNode) this.main.append(section);
    this.views.set(name, section);
    return section;
  }

  view(name) { return this.views.get(name); }

  showView(name, { focus = true } = {}) {
    for (const [n, s] of this.views) s.hidden = n !== name;
    const prev = this.currentView;
    this.currentView = name;
    document.body.dataset.view = name;
    if (focus) {
      const target = this.views.get(name)?.querySelector('[data-autofocus]') || this.views.get(name)?.querySelector('h2');
      if (target) {
        if (!target.hasAttribute('tabindex') && target.tagName === 'H2') target.setAttribute('tabindex', '-1');
        target.focus({ preventScroll: true });
      }
    }
    for (const fn of this.listeners) fn(name, prev);
  }

  onViewChange(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  /** A modal question; resolves true (OK) or false (Cancel / Escape). */
  confirm({ title, text, ok = 'OK', cancel = 'Cancel' }) {
    return new Promise((resolve) => {
      const okBtn = h('button', { type: 'button', class: 'primary', dataset: { action: 'ok' }, text: ok });
      const cancelBtn = h('button', { type: 'button', dataset: { action: 'cancel' }, text: cancel });
      const dlg = h('dialog', { id: 'confirm-dialog', class: 'confirm-dialog', 'aria-labelledby': 'confirm-title' },
        h('h2', { id: 'confirm-title', text: title }),
        h('p', { text }),
        h('div', { class: 'dialog-actions' }, cancelBtn, okBtn));
      const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
      okBtn.addEventListener('click', () => done(true));
      cancelBtn.addEventListener('click', () => done(false));
      dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
      document.body.append(dlg);
      dlg.showModal();
      cancelBtn.focus();
    });
  }

  toast(message, { error = false, timeout = 5000 } = {}) {
    const el = this.toastEl;
    el.textContent = message;
    el.dataset.kind = error ? 'error' : 'info';
    el.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { el.hidden = true; }, timeout);
  }

  errorText(err) {
    if (!err) return 'Unknown error';
    if (typeof err.describe === 'function') return err.describe();
    return err.message || String(err);
  }

  async busy(button, fn) {
    const wasDisabled = button?.disabled;
    if (button) { button.disabled = true; button.setAttribute('aria-busy', 'true'); }
    try {
      return await fn();
    } finally {
      if (button) { button.disabled = !!wasDisabled; button.removeAttribute('aria-busy'); }
    }
  }

  formatTime(ts) {
    if (!ts) return '';
    const d = new Date(ts);
    if (Number.isNaN(d.getTime())) return '';
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }
}
