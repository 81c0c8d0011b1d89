// The staff console, /staff/{queue}: the live line, call next, served / no-show, queue state.
// It polls the staff API every second: simple, and it recovers by itself from anything.
import { loadMessages, t, translate } from "./i18n.js";
import * as show from "./staffview.js";
import { byId, pageQueue, parseJson, read, remove, reveal, write } from "./ui.js";
import { Client, VQueueError } from "./vqueue.js";

const POLL_MS = 1000;
const STATS_MS = 15_000;
const KEY = "vqueue:staff-key";
const COUNTER = "vqueue:counter";
const queue = pageQueue();
const base = `/v1/queues/${encodeURIComponent(queue)}`;
const client = new Client();
const currentKey = `vqueue:current:${queue}`;

let staffKey = read(sessionStorage, KEY) ?? read(localStorage, KEY);
let summary = null; // {queue, name, state, waiting}
let called = [];
let current = parseJson(read(sessionStorage, currentKey)); // {ticket_id, number, name} at this desk
let pollTimer = null;
let statsAvailable = true;
let statsAt = 0;
let busy = false;
let actions = 0; // bumped by every action: a poll that started before one is stale
let closeArmed = null;

async function main() {
  await loadMessages();
  translate();
  byId("queue-name").textContent = queue;
  byId("link-board").href = `/board/${encodeURIComponent(queue)}`;
  byId("counter").value = read(localStorage, COUNTER) ?? "";
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

async function signIn(key, remember) {
  try {
    const list = await api("GET", "/tickets", key);
    staffKey = key;
    write(remember ? localStorage : sessionStorage, KEY, key);
    byId("view-signin").hidden = true;
    byId("view-console").hidden = false;
    byId("sign-out").hidden = false;
    show.share(queue);
    render(list, await api("GET", "", key));
    schedulePoll();
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

function signOut() {
  forgetKey();
  clearTimeout(pollTimer);
  byId("staff-key").value = "";
  showSignIn("");
  byId("staff-key").focus();
}

function forgetKey() {
  staffKey = null;
  for (const storage of [sessionStorage, localStorage]) remove(storage, KEY);
}

// -- polling -------------------------------------------------------------------------------------

function schedulePoll(delayMs = POLL_MS) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, delayMs);
}

async function poll() {
  if (staffKey === null) return;
  const seen = actions;
  try {
    const [list, info] = await Promise.all([api("GET", "/tickets"), api("GET", "")]);
    if (staffKey === null) return; // signed out meanwhile
    byId("offline").hidden = true;
    if (seen === actions && !busy) render(list, info);
  } catch (error) {
    if (error instanceof VQueueError && (error.status === 401 || error.status === 403)) {
      signOut();
      return;
    }
    byId("offline").hidden = false;
  }
  if (Date.now() - statsAt > STATS_MS) refreshStats();
  schedulePoll();
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

// -- rendering -----------------------------------------------------------------------------------

function render(list, info) {
  summary = info;
  called = list.called ?? [];
  byId("queue-name").textContent = info.name || queue;
  document.title = t("staff.title", { queue: info.name || queue });
  show.state(info.state, busy, closeArmed !== null);
  show.waiting(list.waiting);
  reconcileCurrent();
  show.called(called, current);
  show.current(current, busy);
  byId("stat-waiting").textContent = String(info.waiting);
  if (statsAt === 0) refreshStats();
}

/** With a list newer than our last action: if the ticket this desk serves is finished (here or
 * elsewhere), take this counter's latest call that is still open, if any. */
function reconcileCurrent() {
  if (current && called.some((item) => item.ticket_id === current.ticket_id)) return;
  const counter = counterName();
  const mine = [...called].reverse().find((item) => counter && item.counter === counter);
  setCurrent(mine ?? null);
}

// -- actions -------------------------------------------------------------------------------------

async function act(work) {
  if (busy) return;
  busy = true;
  actions += 1;
  for (const id of ["call-next", "served", "no-show"]) byId(id).disabled = true;
  try {
    await work();
  } catch (error) {
    flash(actionError(error), true);
  } finally {
    busy = false;
    actions += 1;
    if (summary) {
      show.state(summary.state, busy, closeArmed !== null);
      show.current(current, busy);
    }
    await poll();
  }
}

function actionError(error) {
  if (!(error instanceof VQueueError)) return t("staff.error.offline");
  const known = ["queue_paused", "queue_closed", "ticket_finished", "ticket_not_called"];
  return known.includes(error.code) ? t(`staff.error.${error.code}`) : error.message;
}

function callNext() {
  return act(async () => {
    const counter = counterName();
    const body = counter ? { counter } : {};
    const result = await api("POST", "/call-next", staffKey, body);
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
    const path = `/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/${status}`;
    await client.request("POST", path, { token: staffKey });
    setCurrent(null);
    flash(t(`staff.flash.${status}`, { number: ticket.number }));
  });
}

function togglePause() {
  if (!summary || summary.state === "closed") return;
  const action = summary.state === "paused" ? "resume" : "pause";
  return act(() => api("POST", `/${action}`));
}

/** Closing turns customers away, so it takes a second click within a few seconds. */
function toggleClosed() {
  if (!summary) return;
  const button = byId("close");
  if (summary.state !== "closed" && closeArmed === null) {
    button.textContent = t("staff.controls.confirmClose");
    button.classList.add("confirming");
    closeArmed = setTimeout(disarmClose, 4000);
    return;
  }
  disarmClose();
  return act(() => api("POST", summary.state === "closed" ? "/open" : "/close"));
}

function disarmClose() {
  clearTimeout(closeArmed);
  closeArmed = null;
  byId("close").classList.remove("confirming");
  if (summary) show.state(summary.state, busy, false);
}

function flash(text, isError = false) {
  const node = byId("flash");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// -- wiring --------------------------------------------------------------------------------------

const SHORTCUTS = { n: "call-next", s: "served", x: "no-show", p: "pause" };

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
  const id = SHORTCUTS[event.key.toLowerCase()];
  if (!id || byId("view-console").hidden) return;
  const button = byId(id);
  if (button.disabled) return;
  event.preventDefault();
  button.focus();
  button.click();
}

function wire() {
  byId("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId("staff-key").value.trim();
    if (key) signIn(key, byId("remember").checked);
  });
  byId("sign-out").addEventListener("click", signOut);
  byId("call-next").addEventListener("click", callNext);
  byId("served").addEventListener("click", () => finish("served"));
  byId("no-show").addEventListener("click", () => finish("no-show"));
  byId("pause").addEventListener("click", togglePause);
  byId("close").addEventListener("click", toggleClosed);
  byId("counter").addEventListener("change", () => {
    write(localStorage, COUNTER, counterName());
    show.current(current, busy);
  });
  // Enter in the counter field hands the desk back to the keyboard shortcuts.
  byId("counter").addEventListener("keydown", (event) => event.key === "Enter" && event.target.blur());
  document.addEventListener("keydown", onKey);
}

// -- helpers -------------------------------------------------------------------------------------

function api(method, path, key = staffKey, body = undefined) {
  return client.request(method, base + path, { token: key, body });
}

function counterName() {
  return byId("counter").value.trim();
}

function setCurrent(ticket) {
  current = ticket && { ticket_id: ticket.ticket_id, number: ticket.number, name: ticket.name };
  if (current === null) remove(sessionStorage, currentKey);
  else write(sessionStorage, currentKey, JSON.stringify(current));
}

main();
