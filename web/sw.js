// Melo service worker (scope: the web client's directory, /app/).
//
// It only shows notifications for pushes. Pushes are content-free (docs/protocol.md §4.9): a JSON object
// with a `type` and ids. The notification names the kind of event and nothing else — never a
// sender, a message text or an id. A click focuses an open client window or opens one.

const TITLES = {
  message: 'New message',
  call: 'Incoming call',
  contact_request: 'Contact request',
};

self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function pushType(event) {
  if (!event.data) return null;
  try {
    const body = event.data.json();
    return body && typeof body.type === 'string' ? body.type : null;
  } catch {
    return null;
  }
}

self.addEventListener('push', (event) => {
  const type = pushType(event);
  const title = TITLES[type] || 'Melo';
  const options = {
    body: 'Open Melo to see it.',
    tag: `melo-${TITLES[type] ? type : 'other'}`,
    renotify: type === 'call',
    requireInteraction: type === 'call',
    data: { type: TITLES[type] ? type : null },
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = self.registration.scope;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      for (const w of windows) {
        if (w.url.startsWith(url) && 'focus' in w) return w.focus();
      }
      return self.clients.openWindow(url);
    })(),
  );
});
