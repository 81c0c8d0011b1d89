// "It's your turn" beyond the screen: a chime (WebAudio, no sound file), a vibration and a
// system notification, each only where the browser allows it.
let audio = null;

/** Create or resume the audio context; browsers allow this only inside a user gesture. */
export function unlockAudio() {
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch {
    audio = null; // No WebAudio: the other alerts still work.
  }
}

export function audioReady() {
  return audio !== null && audio.state === "running";
}

/** Three rising tones, twice. */
export function chime() {
  if (!audioReady()) return;
  const start = audio.currentTime + 0.05;
  [0, 1].forEach((round) => {
    [660, 880, 1175].forEach((hz, i) => tone(hz, start + round * 0.9 + i * 0.18, 0.35));
  });
}

function tone(hz, at, seconds) {
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.type = "sine";
  osc.frequency.value = hz;
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(0.4, at + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + seconds);
  osc.connect(gain).connect(audio.destination);
  osc.start(at);
  osc.stop(at + seconds + 0.05);
}

export function vibrate() {
  // Chrome refuses (and complains) before the user has touched the page.
  if (!navigator.vibrate || navigator.userActivation?.hasBeenActive === false) return;
  navigator.vibrate([400, 150, 400, 150, 800]);
}

export function notificationsSupported() {
  return "Notification" in globalThis;
}

export function notificationPermission() {
  return notificationsSupported() ? Notification.permission : "denied";
}

/** Ask for notification permission (call inside a click); resolves to the answer. */
export async function askNotifications() {
  if (notificationPermission() !== "default") return notificationPermission();
  try {
    const answer = await Notification.requestPermission();
    if (answer === "granted") registerWorker();
    return answer;
  } catch {
    return "denied";
  }
}

// The worker lives under /q/ so that its scope covers every customer page (server/pages.py).
export const WORKER_URL = "/q/sw.js";
export const WORKER_SCOPE = "/q/";

/** Android shows notifications only through a service worker, so keep one registered. */
export function registerWorker() {
  if (!("serviceWorker" in navigator) || notificationPermission() !== "granted") return;
  navigator.serviceWorker.register(WORKER_URL, { scope: WORKER_SCOPE }).catch(() => {});
}

export async function notify(title, body, tag) {
  if (notificationPermission() !== "granted") return;
  const options = { body, tag, renotify: true, requireInteraction: true, data: location.href };
  try {
    const registration = await navigator.serviceWorker?.getRegistration(WORKER_SCOPE);
    if (registration) {
      await registration.showNotification(title, options);
      return;
    }
    new Notification(title, options).onclick = () => globalThis.focus();
  } catch {
    // A browser that refuses both ways: the page itself still shows the turn.
  }
}
