// "Notify me" in the browser: notification permission, the service worker and a Web Push
// subscription made with the deployment's VAPID key (GET /v1/push/key). The page sends the
// subscription to the server as the ticket's contact; the server's pushes reach the worker
// (/q/sw.js) even when this page is closed.
import { WORKER_SCOPE, WORKER_URL } from "./alerts.js";

export class PushRefused extends Error {}

/** Web Push needs a service worker, the Push API and notifications (iOS: a home-screen app). */
export function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in globalThis && "Notification" in globalThis;
}

/** The base64url key as the bytes `applicationServerKey` takes everywhere. */
function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(subscription, key) {
  const used = subscription.options?.applicationServerKey;
  if (!used) return true; // older browsers do not say: keep it
  const a = new Uint8Array(used);
  return a.length === key.length && a.every((byte, i) => byte === key[i]);
}

async function activeRegistration() {
  await navigator.serviceWorker.register(WORKER_URL, { scope: WORKER_SCOPE });
  return navigator.serviceWorker.ready; // resolves once the worker for this page is active
}

/** Ask permission (call inside a click), subscribe, and resolve to the subscription's JSON. */
export async function subscribe(client) {
  if (!pushSupported()) throw new PushRefused("unsupported");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new PushRefused(permission);
  const [registration, { public_key: publicKey }] = await Promise.all([
    activeRegistration(),
    client.pushKey(),
  ]);
  const key = keyBytes(publicKey);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription, key)) {
    await subscription.unsubscribe(); // made for another deployment's key
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: key,
  });
  return subscription.toJSON();
}

/** Drop this browser's subscription (the server forgets it through the contact route). */
export async function unsubscribe() {
  if (!pushSupported()) return;
  const registration = await navigator.serviceWorker.getRegistration(WORKER_SCOPE);
  const subscription = await registration?.pushManager.getSubscription();
  await subscription?.unsubscribe().catch(() => false);
}
