// The customer page, /q/{queue}: join, watch your place live, get called, leave. It shows the
// queue's state (paused, closed) as the server pushes it, follows a transfer to the new ticket,
// and keeps watching after a no-show so that staff can put the ticket back in line.
import * as alerts from "./alerts.js";
import { formatWait, loadMessages, t, translate } from "./i18n.js";
import { NotifyMe } from "./notifyme.js";
import { pushSupported } from "./pushsub.js";
import { byId, pageQueue, read, reveal, showOnly, write } from "./ui.js";
import {
  Client,
  VQueueError,
  forgetTicket,
  newIdempotencyKey,
  recallTicket,
  rememberTicket,
} from "./vqueue.js";

let queue = pageQueue(); // changes when the ticket is transferred to another queue
const client = new Client();
let notifyMe = null; // the "Notify me" panel (notifyme.js), made once the page is wired
const views = ["join", "waiting", "turn", "done", "missing", "offline"].map((v) => byId(`view-${v}`));
let shown = null;
const view = (name) => {
  shown = name;
  showOnly(views, byId(`view-${name}`));
  showQueueState();
};

let queueName = queue;
let ticket = null; // {ticket_id, token, number} of the ticket this browser holds
let watch = null;
let joinKey = newIdempotencyKey(); // one per join attempt, so a retried submit is one ticket
let lastPosition = null;
let queueState = "open"; // from the queue summary, then from the server's `queue` messages

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
    queueState = info.state;
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
  if (state.status === "transferred" && state.token && state.to_ticket_id) {
    // Moved while this page slept: follow the ticket to its new queue.
    return follow({ to_ticket_id: state.to_ticket_id, token: state.token, to_queue: null });
  }
  ticket = { ...saved, number: state.number };
  if (state.status === "waiting") showWaiting(state);
  else if (state.status === "called") showTurn(state.counter);
  else if (state.status === "no_show") showDone(state.status); // and keep watching: a requeue
  else return showDone(state.status); // brings a no-show ticket back; the others are final
  startWatch();
}

/** The ticket now lives in another queue under a new id and token: remember and show it. */
async function follow({ to_ticket_id: ticketId, token, to_queue: toQueue }) {
  const newQueue = toQueue ?? ticketId.slice(0, ticketId.lastIndexOf("."));
  const number = Number(ticketId.slice(ticketId.lastIndexOf(".") + 1));
  notifyMe.follow(ticket); // the server moved the contact with the ticket
  ticket = { ticket_id: ticketId, token, number };
  rememberTicket(newQueue, ticket);
  if (newQueue !== queue) {
    rememberTicket(queue, ticket); // a reload of the old page follows too
    queue = newQueue;
    history.replaceState(null, "", `/q/${encodeURIComponent(newQueue)}`);
    const info = await client.queue(newQueue).catch(() => null);
    queueName = info?.name || newQueue;
    if (info) queueState = info.state;
    byId("queue-name").textContent = queueName;
  }
  const note = byId("moved-note");
  note.textContent = t("customer.moved", { queue: queueName, number });
  note.hidden = false;
  lastPosition = null;
  if (watch?.state === "ended" || watch === null) {
    await resume(ticket);
  }
}

function startWatch() {
  watch?.close();
  watch = client.watch(ticket.token);
  watch.on("state", (event) => showConnection(event.detail.state));
  watch.on("position", (event) => showWaiting(event.detail));
  watch.on("called", (event) => showTurn(event.detail.counter, event.detail));
  watch.on("status", (event) => showDone(event.detail.status));
  watch.on("queue", (event) => {
    queueState = event.detail.state;
    showQueueState();
  });
  // The watch itself reconnects with the new token; the page remembers it and says so.
  watch.on("moved", (event) => follow(event.detail));
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
  byId("join-waiting").textContent = info?.archived
    ? t("customer.join.archived")
    : closed
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
  if (ticket) notifyMe.show(ticket);
  setTitle(t("customer.title.position", { position, queue: queueName }));
}

/** Paused or closed, in plain words, while the customer waits or is about to join. */
function showQueueState() {
  const node = byId("queue-state");
  const relevant = shown === "waiting" || (shown === "join" && queueState === "paused");
  node.hidden = queueState === "open" || !relevant;
  node.dataset.state = queueState;
  node.textContent = node.hidden ? "" : t(`customer.state.${queueState}`);
}

function showTurn(counter, called = {}) {
  view("turn");
  byId("turn-recall").hidden = called.recall !== true;
  const where = counter ? counter : t("customer.turn.desk");
  byId("turn-title").textContent = t("customer.turn.title");
  byId("turn-go").textContent = t("customer.turn.go");
  byId("turn-counter").textContent = where;
  byId("turn-number").textContent = t("customer.turn.number", { number: ticket?.number ?? "" });
  setTitle(t("customer.title.turn", { queue: queueName }));
  alertOnce(where, called.recall ? `recall:${called.seq}` : "call");
}

function showDone(status) {
  view("done");
  if (status !== "no_show") notifyMe.forget(); // final: the server dropped the contact
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
function alertOnce(where, which) {
  const key = `vqueue:alerted:${ticket?.ticket_id}:${which}`;
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
  const wanted = byId("join-notify").checked && !byId("join-notify-row").hidden;
  const asked = wanted ? alerts.askNotifications() : Promise.resolve(null);
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
    // Ticked at join: once the permission is granted, subscribe for pushes too.
    asked.then((answer) => answer === "granted" && pushSupported() && notifyMe.enablePush());
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
  watch = null;
  byId("moved-note").hidden = true;
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
  notifyMe = new NotifyMe(client);
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
