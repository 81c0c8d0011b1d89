// The customer page's service worker, served as /q/sw.js so that its scope covers every
// customer page. It shows "almost your turn" and "it's your turn" when a Web Push message comes
// in, even with the page closed, and brings the ticket's page back when the notification is
// tapped. A message is JSON (server/notify/plan.py, push_payload):
// {id, kind, ticket_id, title, body, counter, url}; `id` is the delivery id, shown once.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  event.waitUntil(showPush(readPush(event.data)));
});

function readPush(data) {
  if (!data) return {};
  try {
    const message = data.json();
    return message && typeof message === "object" ? message : {};
  } catch {
    return { body: data.text() };
  }
}

async function showPush(message) {
  // The page's own "your turn" notification (alerts.js) has the same tag: one replaces the other.
  const tag = message.ticket_id ?? "vqueue";
  // A push service may deliver a message twice: the same delivery id is shown once.
  const shown = await self.registration.getNotifications({ tag });
  if (message.id && shown.some((n) => n.data?.id === message.id)) return;
  const url = typeof message.url === "string" ? message.url : ticketPage(message.ticket_id);
  await self.registration.showNotification(message.title || "vqueue", {
    body: message.body || "",
    tag, // "your turn" replaces "almost your turn" of the same ticket
    renotify: true,
    requireInteraction: message.kind === "turn",
    data: { id: message.id ?? null, url: new URL(url, self.registration.scope).href },
  });
}

/** The customer page of a ticket id ("front-desk.42" -> /q/front-desk), when no URL is given. */
function ticketPage(ticketId) {
  const cut = typeof ticketId === "string" ? ticketId.lastIndexOf(".") : -1;
  const queue = cut > 0 ? ticketId.slice(0, cut) : "";
  return new URL(queue ? encodeURIComponent(queue) : ".", self.registration.scope).href;
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data;
  // The page's own notifications (alerts.js) carry the URL as a string.
  const url = typeof data === "string" ? data : data?.url;
  event.waitUntil(openPage(url));
});

async function openPage(url) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const open = windows.find((w) => w.url === url) ?? (url ? undefined : windows[0]);
  if (open) return open.focus();
  return url ? self.clients.openWindow(url) : undefined;
}
