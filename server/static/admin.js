// The admin page, /admin: a venue's queues (create, settings, archive), keys (create, revoke),
// webhooks and their dead deliveries, and today's statistics with a plot. Everything comes from
// the HTTP API with the venue's admin key, entered and kept as the staff console keeps its key.
import { dayPlot, daySlots } from "./adminplot.js";
import { loadMessages, locale, t, translate } from "./i18n.js";
import { byId, h, read, remove, renderList, reveal, write } from "./ui.js";
import { Client, VQueueError } from "./vqueue.js";

const KEY = "vqueue:admin-key";
const WEBHOOK_EVENTS = [
  "ticket.joined",
  "ticket.called",
  "ticket.recalled",
  "ticket.requeued",
  "ticket.served",
  "ticket.no_show",
  "ticket.left",
  "ticket.removed",
  "ticket.transferred",
  "queue.state",
];
const client = new Client();
const enc = encodeURIComponent;

let adminKey = read(sessionStorage, KEY) ?? read(localStorage, KEY);
let queues = []; // the latest GET /v1/queues
let editing = null; // the slug whose settings the queue form edits, or null to create
let deadOf = null; // the webhook whose dead deliveries are shown
const armed = new Map(); // button -> what its confirming second click does

function api(method, path, body = undefined) {
  return client.request(method, path, { token: adminKey, body });
}

function flash(message) {
  byId("flash").textContent = message;
}

function explain(error) {
  if (!(error instanceof VQueueError)) return t("admin.error.network");
  const known = `admin.error.${error.code}`;
  const text = t(known);
  return text === known ? error.message || error.code : text;
}

function when(iso) {
  if (!iso) return t("admin.never");
  return new Date(iso).toLocaleString(locale(), { dateStyle: "medium", timeStyle: "short" });
}

// -- signing in ----------------------------------------------------------------------------------

function showSignIn(message) {
  byId("view-signin").hidden = false;
  byId("view-admin").hidden = true;
  byId("section-links").hidden = true;
  byId("signin-error").textContent = message;
  byId("admin-key").focus();
}

async function signIn(key, remember) {
  adminKey = key;
  try {
    await api("GET", "/v1/keys"); // admin only: a staff key is told so
  } catch (error) {
    adminKey = null;
    const refused = error instanceof VQueueError && (error.status === 401 || error.status === 403);
    if (refused) forgetKey();
    showSignIn(
      error instanceof VQueueError && error.status === 403
        ? t("admin.signin.notAdmin")
        : error instanceof VQueueError && error.status === 401
          ? t("admin.signin.wrongKey")
          : explain(error),
    );
    return;
  }
  write(remember ? localStorage : sessionStorage, KEY, key);
  byId("view-signin").hidden = true;
  byId("view-admin").hidden = false;
  byId("section-links").hidden = false;
  byId("admin-key").value = "";
  await Promise.all([loadQueues(), loadKeys(), loadWebhooks()]);
  await loadStats();
}

function forgetKey() {
  adminKey = null;
  for (const storage of [sessionStorage, localStorage]) remove(storage, KEY);
}

function ownKeyId() {
  return /^vqk_([0-9a-f]{16})_/.exec(adminKey ?? "")?.[1] ?? null;
}

/** A table cell holding a row's action buttons. */
function actions(...buttons) {
  return h("td", {}, h("div", { class: "acts" }, ...buttons));
}

// -- confirm by a second click -------------------------------------------------------------------

/** The first click arms `button` (its text and name ask to confirm); the second runs `action`. */
function confirmFirst(button, confirmLabel, action) {
  if (armed.has(button)) {
    disarm(button);
    return action();
  }
  relabel(button, confirmLabel);
  return undefined;
}

/** Show `text` on `button`, its accessible name keeping what it acts on; remember the old. */
function relabel(button, text) {
  if (!armed.has(button)) {
    armed.set(button, { text: button.textContent, label: button.getAttribute("aria-label") });
  }
  const was = armed.get(button);
  button.textContent = text;
  button.setAttribute("aria-label", `${text}: ${was.label}`);
  button.classList.add("confirming");
}

function disarm(button) {
  const was = armed.get(button);
  armed.delete(button);
  button.textContent = was.text;
  button.setAttribute("aria-label", was.label);
  button.classList.remove("confirming");
}

// -- queues --------------------------------------------------------------------------------------

async function loadQueues() {
  byId("queues-error").textContent = "";
  try {
    queues = await api("GET", "/v1/queues");
  } catch (error) {
    byId("queues-error").textContent = explain(error);
    return;
  }
  renderList(byId("queues-body"), queues, queueRow);
  byId("queues-empty").hidden = queues.length > 0;
  const select = byId("stats-queue");
  const chosen = select.value;
  renderList(select, queues, (q) => h("option", { value: q.queue, text: q.name || q.queue }));
  if (queues.some((q) => q.queue === chosen)) select.value = chosen;
}

function queueRow(q) {
  const archive = h("button", {
    class: "button danger small",
    type: "button",
    "data-testid": `archive-${q.queue}`,
    "aria-label": t("admin.queues.archiveLabel", { queue: q.queue }),
    text: t("admin.queues.archive"),
  });
  archive.addEventListener("click", () =>
    archive.dataset.force
      ? archiveQueue(q, archive, true)
      : confirmFirst(archive, t("admin.queues.archiveConfirm"), () => archiveQueue(q, archive, false)),
  );
  return h(
    "tr",
    { "data-queue": q.queue },
    h("td", {}, h("a", { href: `/staff/${enc(q.queue)}`, text: q.queue })),
    h("td", { text: q.name }),
    h("td", {}, h("span", { class: "badge", "data-state": q.state, text: t(`staff.state.${q.state}`) })),
    h("td", { class: "n num", text: String(q.waiting) }),
    actions(
      h("button", {
        class: "button secondary small",
        type: "button",
        "aria-label": t("admin.queues.editLabel", { queue: q.queue }),
        text: t("admin.queues.edit"),
        onclick: () => editQueue(q),
      }),
      archive,
    ),
  );
}

async function archiveQueue(q, button, force) {
  byId("queues-error").textContent = "";
  try {
    const done = await api("DELETE", `/v1/queues/${enc(q.queue)}${force ? "?force=true" : ""}`);
    flash(t("admin.queues.archived", { queue: q.queue, count: done.removed }));
    await loadQueues();
  } catch (error) {
    if (error instanceof VQueueError && error.code === "queue_not_empty") {
      // Say plainly why, and turn the button into the forced archive (one more deliberate click).
      byId("queues-error").textContent = t("admin.queues.notEmpty", { queue: q.queue });
      relabel(button, t("admin.queues.forceConfirm"));
      armed.delete(button); // stays armed for the forced archive, also after losing focus
      button.dataset.force = "1";
      return;
    }
    byId("queues-error").textContent = explain(error);
  }
}

function editQueue(q) {
  editing = q.queue;
  byId("queue-form-title").textContent = t("admin.queues.editTitle", { queue: q.queue });
  byId("queue-slug").value = q.queue;
  byId("queue-slug").readOnly = true;
  byId("queue-name").value = q.name ?? "";
  byId("queue-max").value = q.max_waiting ?? "";
  byId("queue-ahead").value = q.notify_ahead ?? "";
  byId("queue-board-names").checked = q.board_names === true;
  byId("queue-save").textContent = t("admin.queues.saveButton");
  byId("queue-cancel").hidden = false;
  byId("queue-name").focus();
}

function resetQueueForm() {
  editing = null;
  byId("queue-form").reset();
  byId("queue-slug").readOnly = false;
  byId("queue-form-title").textContent = t("admin.queues.create");
  byId("queue-save").textContent = t("admin.queues.createButton");
  byId("queue-cancel").hidden = true;
  byId("queue-form-error").textContent = "";
}

async function saveQueue(event) {
  event.preventDefault();
  const slug = byId("queue-slug").value.trim();
  const error = byId("queue-form-error");
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(slug)) {
    error.textContent = t("admin.queues.badSlug");
    byId("queue-slug").focus();
    return;
  }
  const body = { board_names: byId("queue-board-names").checked };
  const name = byId("queue-name").value.trim();
  if (name) body.name = name;
  const max = byId("queue-max").value.trim();
  const ahead = byId("queue-ahead").value.trim();
  for (const [id, value] of [["queue-max", max], ["queue-ahead", ahead]]) {
    if (value !== "" && !/^[0-9]+$/.test(value)) {
      error.textContent = t("admin.queues.badNumber");
      byId(id).focus();
      return;
    }
  }
  body.max_waiting = max === "" ? null : Number(max);
  if (ahead !== "") body.notify_ahead = Number(ahead);
  try {
    await api("PUT", `/v1/queues/${enc(slug)}`, body);
  } catch (failure) {
    error.textContent = explain(failure);
    return;
  }
  flash(t(editing ? "admin.queues.saved" : "admin.queues.created", { queue: slug }));
  resetQueueForm();
  await loadQueues();
}

// -- keys ----------------------------------------------------------------------------------------

async function loadKeys() {
  byId("keys-error").textContent = "";
  let keys;
  try {
    keys = await api("GET", "/v1/keys");
  } catch (error) {
    byId("keys-error").textContent = explain(error);
    return;
  }
  renderList(byId("keys-body"), keys, keyRow);
}

function keyRow(key) {
  const mine = key.key_id === ownKeyId();
  const revoke = h("button", {
    class: "button danger small",
    type: "button",
    "data-testid": `revoke-${key.key_id}`,
    "aria-label": t("admin.keys.revokeLabel", { label: key.label || key.key_id }),
    text: t("admin.keys.revoke"),
  });
  revoke.addEventListener("click", () =>
    confirmFirst(revoke, t("admin.keys.revokeConfirm"), () => revokeKey(key, mine)),
  );
  return h(
    "tr",
    { "data-key": key.key_id },
    h("td", { text: (key.label || t("admin.keys.unlabelled")) + (mine ? ` ${t("admin.keys.thisKey")}` : "") }),
    h("td", { text: t(`admin.role.${key.role}`) }),
    h("td", {}, h("code", { text: key.key_id })),
    h("td", { text: when(key.created_at) }),
    h("td", { text: when(key.last_used_at) }),
    actions(revoke),
  );
}

async function revokeKey(key, mine) {
  byId("keys-error").textContent = "";
  try {
    await api("DELETE", `/v1/keys/${enc(key.key_id)}`);
  } catch (error) {
    await loadKeys();
    byId("keys-error").textContent = explain(error); // 409 last_admin_key, said plainly
    return;
  }
  flash(t("admin.keys.revoked", { label: key.label || key.key_id }));
  if (mine) {
    forgetKey();
    showSignIn(t("admin.keys.revokedOwn"));
    return;
  }
  await loadKeys();
}

async function createKey(event) {
  event.preventDefault();
  const body = { role: byId("key-role").value };
  const label = byId("key-label").value.trim();
  if (label) body.label = label;
  let made;
  try {
    made = await api("POST", "/v1/keys", body);
  } catch (error) {
    byId("key-form-error").textContent = explain(error);
    return;
  }
  byId("key-form").reset();
  byId("key-form-error").textContent = "";
  byId("new-key").hidden = false;
  const secret = byId("new-key-value");
  secret.value = made.staff_key; // shown this once: the server keeps only its hash
  secret.focus();
  secret.select();
  await loadKeys();
}

// -- webhooks and dead letters -------------------------------------------------------------------

async function loadWebhooks() {
  let hooks;
  try {
    hooks = await api("GET", "/v1/webhooks");
  } catch (error) {
    // A server without webhooks (404) shows no section; anything else is said.
    const absent = error instanceof VQueueError && error.status === 404;
    byId("webhooks").hidden = absent;
    byId("link-webhooks").hidden = absent;
    if (!absent) byId("webhooks-error").textContent = explain(error);
    return;
  }
  byId("webhooks").hidden = false;
  byId("link-webhooks").hidden = false;
  byId("webhooks-error").textContent = "";
  const list = Array.isArray(hooks) ? hooks : (hooks.webhooks ?? []);
  renderList(byId("webhooks-body"), list, webhookRow);
  byId("webhooks-empty").hidden = list.length > 0;
  if (deadOf !== null && !list.some((w) => w.webhook_id === deadOf.webhook_id)) {
    deadOf = null;
    byId("dead").hidden = true;
  }
}

function webhookRow(hook) {
  const remove = h("button", {
    class: "button danger small",
    type: "button",
    "aria-label": t("admin.webhooks.deleteLabel", { url: hook.url }),
    text: t("admin.webhooks.delete"),
  });
  remove.addEventListener("click", () =>
    confirmFirst(remove, t("admin.webhooks.deleteConfirm"), () => deleteWebhook(hook)),
  );
  return h(
    "tr",
    { "data-webhook": hook.webhook_id },
    h("td", {}, h("code", { text: hook.url })),
    h("td", { text: (hook.events ?? []).join(", ") }),
    actions(
      h("button", {
        class: "button secondary small",
        type: "button",
        "data-testid": `dead-${hook.webhook_id}`,
        "aria-label": t("admin.webhooks.deadLabel", { url: hook.url }),
        text: t("admin.webhooks.dead"),
        onclick: () => showDead(hook),
      }),
      remove,
    ),
  );
}

async function deleteWebhook(hook) {
  try {
    await api("DELETE", `/v1/webhooks/${enc(hook.webhook_id)}`);
    flash(t("admin.webhooks.deleted", { url: hook.url }));
  } catch (error) {
    byId("webhooks-error").textContent = explain(error);
  }
  await loadWebhooks();
}

async function createWebhook(event) {
  event.preventDefault();
  const url = byId("webhook-url").value.trim();
  const events = [...byId("webhook-events").querySelectorAll("input:checked")].map((i) => i.value);
  let made;
  try {
    made = await api("POST", "/v1/webhooks", { url, events });
  } catch (error) {
    byId("webhook-form-error").textContent = explain(error);
    return;
  }
  byId("webhook-form").reset();
  byId("webhook-form-error").textContent = "";
  byId("new-webhook").hidden = false;
  const secret = byId("new-webhook-secret");
  secret.value = made.secret;
  secret.focus();
  secret.select();
  await loadWebhooks();
}

async function showDead(hook) {
  deadOf = hook;
  byId("dead").hidden = false;
  byId("dead-title").textContent = t("admin.dead.title", { url: hook.url });
  let found;
  try {
    found = await api("GET", `/v1/webhooks/${enc(hook.webhook_id)}/deliveries?status=dead`);
  } catch (error) {
    byId("webhooks-error").textContent = explain(error);
    return;
  }
  const deliveries = found.deliveries ?? [];
  renderList(byId("dead-body"), deliveries, (d) => deadRow(hook, d));
  byId("dead-empty").hidden = deliveries.length > 0;
  byId("dead-title").focus?.();
}

function deadRow(hook, d) {
  return h(
    "tr",
    { "data-delivery": d.delivery_id },
    h("td", { text: d.type }),
    h("td", { class: "n num", text: String(d.seq ?? "") }),
    h("td", { class: "n num", text: String(d.attempts) }),
    h("td", { class: "last-error", text: d.last_error ?? "" }),
    actions(
      h("button", {
        class: "button primary small",
        type: "button",
        "data-testid": `retry-${d.delivery_id}`,
        "aria-label": t("admin.dead.retryLabel", { type: d.type, seq: d.seq ?? "" }),
        text: t("admin.dead.retry"),
        onclick: () => retry(hook, d),
      }),
    ),
  );
}

async function retry(hook, d) {
  try {
    await api("POST", `/v1/webhooks/${enc(hook.webhook_id)}/deliveries/${enc(d.delivery_id)}/retry`, {});
    flash(t("admin.dead.retried", { type: d.type }));
  } catch (error) {
    byId("webhooks-error").textContent = explain(error);
  }
  await showDead(hook);
}

// -- today's statistics --------------------------------------------------------------------------

function dayStart(now = new Date()) {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
}

async function loadStats() {
  const slug = byId("stats-queue").value;
  const figures = byId("stats-figures");
  const plot = byId("stats-plot");
  byId("stats-error").textContent = "";
  if (!slug) {
    figures.replaceChildren();
    plot.replaceChildren(h("p", { class: "empty", text: t("admin.stats.noQueue") }));
    return;
  }
  const start = dayStart();
  const since = new Date(start).toISOString();
  const until = new Date(start + 24 * 3600_000).toISOString();
  let stats;
  try {
    stats = await api("GET", `/v1/queues/${enc(slug)}/stats?since=${enc(since)}&until=${enc(until)}`);
  } catch (error) {
    byId("stats-error").textContent = explain(error);
    return;
  }
  const shown = [
    ["joins", stats.joins],
    ["served", stats.served],
    ["no_shows", stats.no_shows],
    ["left", stats.left],
    ["removed", stats.removed ?? 0],
    ["avg_wait", stats.avg_wait_s === null ? "–" : `${Math.round(stats.avg_wait_s / 60)} min`],
  ];
  figures.replaceChildren(
    ...shown.map(([name, value]) =>
      h("div", {}, h("dt", { text: t(`admin.stats.${name}`) }), h("dd", { class: "num", text: String(value) })),
    ),
  );
  const hourFormat = new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" });
  const slots = daySlots(stats.throughput_per_hour ?? [], start, Date.now());
  const peak = Math.max(0, ...slots.map((s) => s.waiting ?? 0));
  const svg = dayPlot(slots, {
    title: t("admin.stats.plotTitle", { queue: slug }),
    desc: t("admin.stats.plotDesc", { served: stats.served, peak }),
    waiting: t("admin.stats.waiting"),
    served: t("admin.stats.served"),
    hour: (ms) => hourFormat.format(new Date(ms)),
  });
  plot.replaceChildren(svg);
}

// -- wiring --------------------------------------------------------------------------------------

function wire() {
  byId("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId("admin-key").value.trim();
    if (key) signIn(key, byId("remember").checked);
    else byId("signin-error").textContent = t("admin.signin.empty");
  });
  byId("sign-out").addEventListener("click", () => {
    forgetKey();
    showSignIn("");
  });
  byId("queue-form").addEventListener("submit", saveQueue);
  byId("queue-cancel").addEventListener("click", resetQueueForm);
  byId("key-form").addEventListener("submit", createKey);
  byId("new-key-done").addEventListener("click", () => {
    byId("new-key-value").value = "";
    byId("new-key").hidden = true;
  });
  byId("webhook-form").addEventListener("submit", createWebhook);
  byId("new-webhook-done").addEventListener("click", () => {
    byId("new-webhook-secret").value = "";
    byId("new-webhook").hidden = true;
  });
  byId("stats-queue").addEventListener("change", loadStats);
  // A confirming button that loses focus is disarmed: a later click starts over.
  document.addEventListener("focusout", (event) => {
    if (armed.has(event.target)) disarm(event.target);
  });
  byId("webhook-events").append(
    ...WEBHOOK_EVENTS.map((name) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", value: name, checked: true }),
        h("span", { text: name }),
      ),
    ),
  );
}

async function main() {
  await loadMessages();
  translate();
  document.title = t("admin.pageTitle");
  wire();
  if (adminKey) await signIn(adminKey, false);
  else showSignIn("");
  reveal();
}

main();
