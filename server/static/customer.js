// The customer page, /q/{queue}: join, watch your place live, get called, leave.
import * as alerts from "./alerts.js";
import { formatWait, loadMessages, t, translate } from "./i18n.js";
import { byId, pageQueue, read, reveal, showOnly, write } from "./ui.js";
import {
  Client,
  VQueueError,
  forgetTicket,
  newIdempotencyKey,
  recallTicket,
  rememberTicket,
} from "./vqueue.js";

const queue = pageQueue();
const client = new Client();
const views = ["join", "waiting", "turn", "done", "missing", "offline"].map((v) => byId(`view-${v}`));
const view = (name) => showOnly(views, byId(`view-${name}`));

let queueName = queue;
let ticket = null; // {ticket_id, token, number} of the ticket this browser holds
let watch = null;
let joinKey = newIdempotencyKey(); // one per join attempt, so a retried submit is one ticket
let lastPosition = null;

async function main() {
  await loadMessages();
  translate();
  wire();
  await start();
  reveal();
}

async function start() {
  try {
    const info = await client.queue(queue);
    queueName = info.name || queue;
    byId("queue-name").textContent = queueName;
    setTitle();
    const saved = recallTicket(queue);
    if (saved) await resume(saved);
    else showJoin(info);
  } catch (error) {
    if (error instanceof VQueueError && error.status === 404) view("missing");
    else view("offline");
    byId("queue-name").textContent = queueName;
  }
}

async function resume(saved) {
  ticket = saved;
  let state;
  try {
    state = await client.ticket(saved.ticket_id, saved.token);
  } catch (error) {
    if (error instanceof VQueueError && error.status === 401) {
      forgetTicket(queue);
      ticket = null;
      showJoin(await client.queue(queue), t("customer.join.expired"));
      return;
    }
    throw error;
  }
  ticket = { ...saved, number: state.number };
  if (state.status === "waiting") showWaiting(state);
  else if (state.status === "called") showTurn(state.counter);
  else return showDone(state.status);
  startWatch();
}

function startWatch() {
  watch?.close();
  watch = client.watch(ticket.token);
  watch.on("state", (event) => showConnection(event.detail.state));
  watch.on("position", (event) => showWaiting(event.detail));
  watch.on("called", (event) => showTurn(event.detail.counter));
  watch.on("status", (event) => showDone(event.detail.status));
  watch.on("end", (event) => {
    if (event.detail.reason === "unauthorized") {
      forgetTicket(queue);
      ticket = null;
      showJoin(null, t("customer.join.expired"));
    }
  });
}

// -- views ---------------------------------------------------------------------------------------

function showJoin(info, message = "") {
  view("join");
  const closed = info?.state === "closed";
  const waiting = info?.waiting;
  byId("join-waiting").textContent = closed
    ? t("customer.join.closed")
    : typeof waiting !== "number"
      ? ""
      : waiting === 0
        ? t("customer.join.nobody")
        : t("customer.join.waiting", { count: waiting });
  byId("join").disabled = closed;
  byId("join-error").textContent = message;
  byId("join-notify-row").hidden = alerts.notificationPermission() !== "default";
  showConnection(null);
  setTitle();
}

function showWaiting({ position, eta_s: eta }) {
  if (typeof position !== "number") return;
  view("waiting");
  const node = byId("position");
  node.textContent = String(position);
  if (lastPosition !== null && position < lastPosition) {
    node.classList.remove("bump");
    void node.offsetWidth; // restart the animation
    node.classList.add("bump");
  }
  lastPosition = position;
  const ahead = byId("ahead");
  ahead.textContent =
    position <= 1 ? t("customer.waiting.next") : t("customer.waiting.ahead", { count: position - 1 });
  ahead.classList.toggle("next", position <= 1);
  if (eta !== undefined) byId("eta").textContent = formatWait(eta);
  else if (!byId("eta").textContent) byId("eta").textContent = formatWait(null);
  byId("number").textContent = ticket?.number ?? "—";
  byId("alerts").hidden = alerts.audioReady();
  setTitle(t("customer.title.position", { position, queue: queueName }));
}

function showTurn(counter) {
  view("turn");
  const where = counter ? counter : t("customer.turn.desk");
  byId("turn-title").textContent = t("customer.turn.title");
  byId("turn-go").textContent = t("customer.turn.go");
  byId("turn-counter").textContent = where;
  byId("turn-number").textContent = t("customer.turn.number", { number: ticket?.number ?? "" });
  setTitle(t("customer.title.turn", { queue: queueName }));
  alertOnce(where);
}

function showDone(status) {
  view("done");
  byId("done-title").textContent = t(`customer.done.${status}.title`);
  byId("done-text").textContent = t(`customer.done.${status}.text`);
  showConnection(null);
  setTitle();
}

function showConnection(state) {
  const node = byId("conn");
  node.hidden = state === null || state === "ended" || state === "idle";
  if (node.hidden) return;
  node.dataset.state = state;
  byId("conn-text").textContent = t(`customer.conn.${state}`);
}

function setTitle(text) {
  document.title = text ?? t("customer.title.page", { queue: queueName });
}

/** Sound, vibration and a notification, once per ticket (a reload or a reconnect re-sends
 * "called": the page shows it again, but does not ring again). */
function alertOnce(where) {
  const key = `vqueue:alerted:${ticket?.ticket_id}`;
  if (read(sessionStorage, key)) return;
  write(sessionStorage, key, "1"); // without storage a reload may ring twice: better than never
  alerts.chime();
  alerts.vibrate();
  const body = t("customer.turn.notification", { counter: where, number: ticket?.number ?? "" });
  alerts.notify(t("customer.turn.title"), body, ticket?.ticket_id ?? "vqueue");
}

// -- actions -------------------------------------------------------------------------------------

async function join(event) {
  event.preventDefault();
  alerts.unlockAudio();
  if (byId("join-notify").checked && !byId("join-notify-row").hidden) alerts.askNotifications();
  const button = byId("join");
  button.disabled = true;
  byId("join-error").textContent = "";
  try {
    const name = byId("join-name").value.trim();
    const joined = await client.join(queue, { name, idempotencyKey: joinKey });
    joinKey = newIdempotencyKey();
    ticket = { ticket_id: joined.ticket_id, token: joined.token, number: joined.number };
    rememberTicket(queue, ticket);
    lastPosition = null;
    byId("eta").textContent = "";
    showWaiting(joined);
    startWatch();
  } catch (error) {
    // The key already named another join (the name changed since): the next try is a new join.
    if (error instanceof VQueueError && error.code === "idempotency_key_reused") {
      joinKey = newIdempotencyKey();
    }
    const closed = error instanceof VQueueError && error.code === "queue_closed";
    byId("join-error").textContent = t(closed ? "customer.join.closed" : "customer.join.failed");
  } finally {
    button.disabled = false;
  }
}

async function leave() {
  byId("leave-error").textContent = "";
  try {
    await client.leave(ticket.ticket_id, ticket.token);
  } catch (error) {
    // Refused (finished meanwhile, or the token is no longer valid): show what is true now.
    if (error instanceof VQueueError && error.status < 500) {
      return resume(ticket).catch(() => view("offline"));
    }
    byId("leave-error").textContent = t("customer.leave.failed");
    return;
  }
  watch?.close();
  showDone("left");
  byId("join-again").focus();
}

function joinAgain() {
  watch?.close();
  forgetTicket(queue);
  ticket = null;
  lastPosition = null;
  client
    .queue(queue)
    .catch(() => null)
    .then((info) => {
      showJoin(info);
      byId("join-name").focus();
    });
}

function confirmLeave(open) {
  byId("leave-confirm").hidden = !open;
  byId("leave").hidden = open;
  (open ? byId("leave-yes") : byId("leave")).focus();
}

function wire() {
  byId("join-form").addEventListener("submit", join);
  byId("leave").addEventListener("click", () => confirmLeave(true));
  byId("leave-no").addEventListener("click", () => confirmLeave(false));
  byId("leave-yes").addEventListener("click", () => {
    confirmLeave(false);
    leave();
  });
  byId("join-again").addEventListener("click", joinAgain);
  byId("offline-retry").addEventListener("click", () => start());
  byId("alerts").addEventListener("click", () => {
    alerts.unlockAudio();
    alerts.askNotifications();
    byId("alerts").hidden = true;
  });
  // Any touch unlocks sound for later (a reload has no join click to do it).
  document.addEventListener("pointerdown", alerts.unlockAudio, { once: true });
  alerts.registerWorker();
}

main();
