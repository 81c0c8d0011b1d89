// The staff console, /staff/{queue}: the live line, call next, served / no-show, recall,
// requeue, transfer, remove, priority joins and the queue's state. The line is pushed by the
// server (`watch_queue` on the WebSocket): nothing here polls.
import { loadMessages, t, translate } from "./i18n.js";
import { TicketDialog } from "./staffdialog.js";
import * as show from "./staffview.js";
import { byId, pageQueue, parseJson, read, remove, reveal, write } from "./ui.js";
import { Client, VQueueError } from "./vqueue.js";

const STATS_MIN_MS = 15_000; // today's figures are refreshed at most this often
const KEY = "vqueue:staff-key";
const COUNTER = "vqueue:counter";
const queue = pageQueue();
const base = `/v1/queues/${encodeURIComponent(queue)}`;
const client = new Client();
const currentKey = `vqueue:current:${queue}`;
const dialog = new TicketDialog(act);

let staffKey = read(sessionStorage, KEY) ?? read(localStorage, KEY);
let line = null; // the latest `line` frame
let queueName = queue;
let current = parseJson(read(sessionStorage, currentKey)); // {ticket_id, number, name} at this desk
let currentSeen = false; // a line frame has shown `current` among the called tickets
let live = null; // the watch_queue subscription
let statsAvailable = true;
let statsAt = 0;
let busy = false;
const armed = { close: null, clear: null }; // buttons waiting for their confirming second click

async function main() {
  await loadMessages();
  translate();
  byId("queue-name").textContent = queue;
  byId("link-board").href = `/board/${encodeURIComponent(queue)}`;
  byId("counter").value = read(localStorage, COUNTER) ?? "";
  show.priorities();
  wire();
  if (staffKey) await signIn(staffKey, false);
  else showSignIn("");
  reveal();
}

// -- signing in ----------------------------------------------------------------------------------

function showSignIn(message) {
  byId("view-signin").hidden = false;
  byId("view-console").hidden = true;
  byId("sign-out").hidden = true;
  byId("state-badge").hidden = true;
  byId("signin-error").textContent = message;
  document.title = t("staff.title", { queue });
}

/** One request checks the key (and says why it is refused); the line then comes pushed. */
async function signIn(key, remember) {
  try {
    const info = await api("GET", "", key);
    await api("GET", "/tickets", key);
    staffKey = key;
    write(remember ? localStorage : sessionStorage, KEY, key);
    queueName = info.name || queue;
    byId("view-signin").hidden = true;
    byId("view-console").hidden = false;
    byId("sign-out").hidden = false;
    show.share(queue);
    startLive();
    refreshStats();
    dialog.loadQueues(queue, () => api("GET", "/v1/queues", staffKey, undefined, true));
    byId("call-next").focus();
  } catch (error) {
    // A refused key is forgotten; a network hiccup or a missing queue is not the key's fault.
    if (error instanceof VQueueError && (error.status === 401 || error.status === 403)) forgetKey();
    showSignIn(signInError(error));
  }
}

function signInError(error) {
  if (!(error instanceof VQueueError)) return t("staff.signin.offline");
  if (error.status === 403) return t("staff.signin.otherVenue");
  if (error.status === 404) return t("staff.signin.noQueue");
  return t("staff.signin.wrongKey");
}

function signOut(message = "") {
  forgetKey();
  live?.close();
  live = null;
  line = null;
  byId("staff-key").value = "";
  showSignIn(message);
  byId("staff-key").focus();
}

function forgetKey() {
  staffKey = null;
  for (const storage of [sessionStorage, localStorage]) remove(storage, KEY);
}

// -- the pushed line -----------------------------------------------------------------------------

function startLive() {
  live?.close();
  live = client.watchQueue(queue, staffKey);
  live.on("line", (event) => render(event.detail));
  live.on("state", (event) => {
    byId("offline").hidden = event.detail.state !== "reconnecting";
  });
  live.on("end", (event) => {
    const reason = event.detail.reason;
    if (reason === "unauthorized" || reason === "forbidden") signOut(t("staff.signin.revoked"));
    else if (reason === "queue_not_found") showSignIn(t("staff.signin.noQueue"));
  });
}

function render(frame) {
  const before = line;
  line = frame;
  document.title = t("staff.title", { queue: queueName });
  byId("queue-name").textContent = queueName;
  show.state(frame.state, busy, armed);
  show.waiting(frame.waiting, frame.waiting_count);
  reconcileCurrent(frame.called);
  show.called(frame.called, current);
  show.current(current, busy);
  byId("stat-waiting").textContent = String(frame.waiting_count);
  // A called ticket finished (here or at another desk): today's figures changed.
  const finished = before?.called.some((c) => !frame.called.some((n) => n.ticket_id === c.ticket_id));
  if (finished && Date.now() - statsAt > STATS_MIN_MS) refreshStats();
}

/** If the ticket this desk serves is finished (here or elsewhere), take this counter's latest
 * call that is still open, if any. A frame that predates this desk's own call (it can overtake
 * the HTTP answer) does not count: only a ticket seen called and then gone is finished. */
function reconcileCurrent(called) {
  const present = current && called.some((item) => item.ticket_id === current.ticket_id);
  if (present) {
    currentSeen = true;
    return;
  }
  if (current && !currentSeen) return;
  const counter = counterName();
  const mine = [...called].reverse().find((item) => counter && item.counter === counter);
  setCurrent(mine ?? null);
}

/** Today's numbers come from the stats endpoint; without one the figures say "—". */
async function refreshStats() {
  statsAt = Date.now();
  if (!statsAvailable) return show.stats(null);
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const since = encodeURIComponent(midnight.toISOString());
  try {
    show.stats(await api("GET", `/stats?since=${since}`));
  } catch (error) {
    if (error instanceof VQueueError && error.status === 404) statsAvailable = false;
    show.stats(null);
  }
}

// -- actions -------------------------------------------------------------------------------------

/** Run one staff call; its effect arrives as the next pushed `line`. */
async function act(work) {
  if (busy) return false;
  busy = true;
  show.busy(true);
  try {
    await work();
    return true;
  } catch (error) {
    if (error instanceof VQueueError && error.status === 401) signOut(t("staff.signin.revoked"));
    flash(actionError(error), true);
    return false;
  } finally {
    busy = false;
    show.busy(false);
    if (line) {
      show.state(line.state, busy, armed);
      show.current(current, busy);
    }
  }
}

function actionError(error) {
  if (!(error instanceof VQueueError)) return t("staff.error.offline");
  const known = [
    "queue_paused",
    "queue_closed",
    "queue_full",
    "ticket_finished",
    "ticket_not_called",
    "ticket_not_found",
    "queue_not_found",
    "forbidden",
  ];
  return known.includes(error.code) ? t(`staff.error.${error.code}`) : error.message;
}

function callNext() {
  return act(async () => {
    const counter = counterName();
    const result = await api("POST", "/call-next", staffKey, counter ? { counter } : {});
    if (result === null) {
      flash(t("staff.flash.nobody"));
      return;
    }
    setCurrent(result);
    const who = result.name ? `${result.number} · ${result.name}` : String(result.number);
    flash(t("staff.flash.called", { who, counter: counter || t("staff.called.noCounter") }));
  });
}

function finish(status) {
  const ticket = current;
  if (!ticket) return Promise.resolve();
  return act(async () => {
    await ticketCall(ticket, status);
    forgetIfCurrent(ticket); // the pushed line may have moved this desk on already
    if (line && !isCalled(ticket.ticket_id)) reconcileCurrent(line.called); // it already did
    flash(t(`staff.flash.${status}`, { number: ticket.number }));
    refreshStats();
  });
}

/** Call a ticket again, at this desk's counter (its watchers get `called` with recall). */
function recall(ticket) {
  if (!ticket) return Promise.resolve();
  return act(async () => {
    const counter = counterName();
    const result = await ticketCall(ticket, "recall", counter ? { counter } : {});
    if (counter) setCurrent(ticket);
    const where = result.counter || t("staff.called.noCounter");
    flash(t("staff.flash.recalled", { number: ticket.number, counter: where }));
  });
}

/** The dialog asks what a requeue, transfer or removal needs, then makes the call. */
function ask(mode, ticket) {
  if (!ticket || busy) return;
  dialog.open(mode, ticket, async (fields) => {
    if (mode === "requeue") {
      const result = await ticketCall(ticket, "requeue", positionBody(fields));
      forgetIfCurrent(ticket);
      flash(t("staff.flash.requeued", { number: ticket.number, position: result.position }));
    } else if (mode === "transfer") {
      const body = { queue: fields.queue, ...positionBody(fields) };
      const result = await ticketCall(ticket, "transfer", body);
      forgetIfCurrent(ticket);
      const to = result.ticket_id.slice(result.ticket_id.lastIndexOf(".") + 1);
      flash(t("staff.flash.transferred", { number: ticket.number, queue: result.queue, to }));
    } else {
      await ticketCall(ticket, "remove", fields.reason ? { reason: fields.reason } : {});
      forgetIfCurrent(ticket);
      flash(t("staff.flash.removed", { number: ticket.number }));
    }
  });
}

function positionBody(fields) {
  return fields.position ? { position: fields.position } : {};
}

function forgetIfCurrent(ticket) {
  if (current?.ticket_id === ticket.ticket_id) setCurrent(null);
}

function isCalled(ticketId) {
  return line?.called.some((item) => item.ticket_id === ticketId) ?? false;
}

/** A priority join by staff (`priority` 0-9, higher first). */
function addPerson(event) {
  event.preventDefault();
  const name = byId("add-name").value.trim();
  const priority = Number(byId("add-priority").value);
  return act(async () => {
    const body = { priority, ...(name ? { name } : {}) };
    const joined = await client.request("POST", `${base}/tickets`, { token: staffKey, body });
    byId("add-name").value = "";
    const who = name ? `${joined.number} · ${name}` : String(joined.number);
    flash(t("staff.flash.added", { who, position: joined.position }));
  });
}

function togglePause() {
  if (!line || line.state === "closed") return;
  const action = line.state === "paused" ? "resume" : "pause";
  return act(() => api("POST", `/${action}`));
}

/** Closing turns customers away and clearing empties the line: each takes a second click. */
function confirmTwice(name, label, run) {
  if (armed[name] === null && run.needsConfirm()) {
    byId(name).textContent = t(label);
    byId(name).classList.add("confirming");
    armed[name] = setTimeout(() => disarm(name), 4000);
    return;
  }
  disarm(name);
  return act(run);
}

function disarm(name) {
  clearTimeout(armed[name]);
  armed[name] = null;
  byId(name).classList.remove("confirming");
  if (line) show.state(line.state, busy, armed);
}

function toggleClosed() {
  if (!line) return;
  const run = () => api("POST", line.state === "closed" ? "/open" : "/close");
  run.needsConfirm = () => line.state !== "closed";
  return confirmTwice("close", "staff.controls.confirmClose", run);
}

function clearLine() {
  if (!line) return;
  const run = async () => {
    const result = await api("POST", "/remove", staffKey, { all: true });
    flash(t("staff.flash.cleared", { count: result.removed }));
  };
  run.needsConfirm = () => true;
  return confirmTwice("clear", "staff.controls.confirmClear", run);
}

function flash(text, isError = false) {
  const node = byId("flash");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// -- wiring --------------------------------------------------------------------------------------

const SHORTCUTS = {
  n: "call-next",
  s: "served",
  x: "no-show",
  p: "pause",
  r: "recall",
  b: "requeue",
  t: "transfer",
  delete: "remove",
};

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest?.("input, textarea, select, [contenteditable], dialog")) return;
  if (byId("view-console").hidden) return;
  const key = event.key.toLowerCase();
  if (key === "a") {
    event.preventDefault();
    byId("add-name").focus();
    return;
  }
  const id = SHORTCUTS[key];
  if (!id) return;
  const button = byId(id);
  if (button.disabled) return;
  event.preventDefault();
  button.focus();
  button.click();
}

/** Row buttons carry `data-action` and the row its ticket: one listener per list. */
function onRowAction(event) {
  const button = event.target.closest("button[data-action]");
  const row = button?.closest("li[data-ticket]");
  if (!button || !row || !line) return;
  const id = row.dataset.ticket;
  const ticket = [...line.waiting, ...line.called].find((item) => item.ticket_id === id);
  if (!ticket) return;
  if (button.dataset.action === "recall") recall(ticket);
  else ask(button.dataset.action, ticket);
}

function wire() {
  byId("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId("staff-key").value.trim();
    if (key) signIn(key, byId("remember").checked);
  });
  byId("sign-out").addEventListener("click", () => signOut());
  byId("call-next").addEventListener("click", callNext);
  byId("served").addEventListener("click", () => finish("served"));
  byId("no-show").addEventListener("click", () => finish("no-show"));
  byId("recall").addEventListener("click", () => recall(current));
  byId("requeue").addEventListener("click", () => ask("requeue", current));
  byId("transfer").addEventListener("click", () => ask("transfer", current));
  byId("remove").addEventListener("click", () => ask("remove", current));
  byId("pause").addEventListener("click", togglePause);
  byId("close").addEventListener("click", toggleClosed);
  byId("clear").addEventListener("click", clearLine);
  byId("add-form").addEventListener("submit", addPerson);
  byId("waiting-list").addEventListener("click", onRowAction);
  byId("called-list").addEventListener("click", onRowAction);
  byId("counter").addEventListener("change", () => {
    write(localStorage, COUNTER, counterName());
    show.current(current, busy);
  });
  // Enter in the counter field hands the desk back to the keyboard shortcuts.
  byId("counter").addEventListener("keydown", (event) => event.key === "Enter" && event.target.blur());
  document.addEventListener("keydown", onKey);
}

// -- helpers -------------------------------------------------------------------------------------

/** A staff call on this queue (`path` after /v1/queues/{queue}), or on any path with `absolute`. */
function api(method, path, key = staffKey, body = undefined, absolute = false) {
  return client.request(method, absolute ? path : base + path, { token: key, body });
}

function ticketCall(ticket, action, body = {}) {
  const path = `/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/${action}`;
  return client.request("POST", path, { token: staffKey, body });
}

function counterName() {
  return byId("counter").value.trim();
}

/** This desk's ticket. `currentSeen`: the latest pushed line already shows it called (an HTTP
 * answer and the frame of the same change can arrive in either order). */
function setCurrent(ticket) {
  current = ticket && { ticket_id: ticket.ticket_id, number: ticket.number, name: ticket.name };
  currentSeen = current !== null && isCalled(current.ticket_id);
  if (current === null) remove(sessionStorage, currentKey);
  else write(sessionStorage, currentKey, JSON.stringify(current));
}

main();
