// The customer page's service worker: it exists only to show "It's your turn" notifications
// (Android allows them only from a worker) and to bring the page back when one is tapped.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows.find((w) => w.url === url) ?? windows[0];
      if (open) return open.focus();
      return url ? self.clients.openWindow(url) : undefined;
    }),
  );
});
