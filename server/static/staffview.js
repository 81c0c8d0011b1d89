// The staff console's rendering: each function draws one part of the page from the data given.
import { formatShortDuration, t } from "./i18n.js";
import { byId, h, renderList } from "./ui.js";

const MAX_SHOWN = 50;

const MAX_PRIORITY = 9;

/** The queue state badge and the controls that depend on it. `armed.close` / `armed.clear`:
 * that button is waiting for its confirming second click, so its label is left alone. */
export function state(queueState, busy, armed) {
  const badge = byId("state-badge");
  badge.hidden = false;
  badge.dataset.state = queueState;
  badge.textContent = t(`staff.state.${queueState}`);
  const paused = queueState === "paused";
  const closed = queueState === "closed";
  byId("pause-text").textContent = t(paused ? "staff.controls.resume" : "staff.controls.pause");
  byId("pause").disabled = closed;
  if (armed.close === null) {
    byId("close").textContent = t(closed ? "staff.controls.open" : "staff.controls.close");
  }
  if (armed.clear === null) byId("clear").textContent = t("staff.controls.clear");
  byId("state-hint").textContent = t(`staff.controls.hint.${queueState}`);
  byId("call-next").disabled = busy || paused;
}

/** The waiting line, first MAX_SHOWN in order; `count` is the whole line's length. */
export function waiting(tickets, count) {
  const shown = tickets.slice(0, MAX_SHOWN);
  renderList(byId("waiting-list"), shown, (item) =>
    h(
      "li",
      { "data-ticket": item.ticket_id },
      h("span", { class: "tnum", text: String(item.number) }),
      nameCell(item.name, item.priority),
      h("span", { class: "tmeta", text: t("staff.waiting.position", { position: item.position }) }),
      actions(item, ["transfer", "remove"]),
    ),
  );
  byId("waiting-count").textContent = String(count);
  byId("waiting-empty").hidden = count > 0;
  const more = count - shown.length;
  byId("waiting-more").textContent = more > 0 ? t("staff.waiting.more", { count: more }) : "";
}

/** Tickets being served, latest call first; this desk's own is highlighted. */
export function called(tickets, current) {
  const now = Date.now();
  const latestFirst = [...tickets].reverse().slice(0, MAX_SHOWN);
  renderList(byId("called-list"), latestFirst, (item) => {
    const at = Date.parse(item.at);
    const minutes = Math.max(0, Math.floor((now - (Number.isNaN(at) ? now : at)) / 60_000));
    const where = item.counter || t("staff.called.noCounter");
    const mine = item.ticket_id === current?.ticket_id;
    return h(
      "li",
      { class: mine ? "mine" : null, "data-ticket": item.ticket_id },
      h("span", { class: "tnum", text: String(item.number) }),
      nameCell(item.name),
      h("span", { class: "tmeta", text: t("staff.called.meta", { counter: where, minutes }) }),
      actions(item, ["recall", "requeue", "transfer", "remove"]),
    );
  });
  byId("called-empty").hidden = tickets.length > 0;
}

/** The ticket at this desk, and the buttons that act on it. */
export function current(ticket, busy) {
  byId("current-number").textContent = ticket ? String(ticket.number) : t("none");
  const name = ticket ? ticket.name || t("staff.noName") : t("staff.desk.idle");
  byId("current-name").textContent = name;
  for (const id of ["served", "no-show", "recall", "requeue", "transfer", "remove"]) {
    byId(id).disabled = busy || !ticket;
  }
}

/** While a call is under way, the buttons that start another wait. */
export function busy(on) {
  for (const id of ["call-next", "served", "no-show", "recall", "requeue", "transfer", "remove"]) {
    if (on) byId(id).disabled = true;
  }
  byId("add").disabled = on;
}

/** The priority choices of a staff join: normal (0) and 1-9, higher first. */
export function priorities() {
  const options = [h("option", { value: "0", text: t("staff.add.normal") })];
  for (let level = 1; level <= MAX_PRIORITY; level += 1) {
    options.push(h("option", { value: String(level), text: t("staff.add.level", { level }) }));
  }
  byId("add-priority").replaceChildren(...options);
}

/** `GET /v1/queues/{queue}/stats` answers `served` and `avg_wait_s` (null when none waited);
 * null stats (no such endpoint, or unreachable) show "—". */
export function stats(answer) {
  const served = answer?.served;
  byId("stat-served").textContent = typeof served === "number" ? String(served) : t("none");
  byId("stat-wait").textContent = formatShortDuration(answer?.avg_wait_s);
}

/** The join QR code and link. */
export function share(queue) {
  const slug = encodeURIComponent(queue);
  const url = `${location.origin}/q/${slug}`;
  byId("qr").src = `/v1/queues/${slug}/qr.svg`;
  byId("qr").alt = t("staff.share.qrAlt");
  byId("join-link").href = url;
  byId("join-link").textContent = url.replace(/^https?:\/\//, "");
}

function nameCell(name, priority = 0) {
  const badge = priority > 0 ? h("span", { class: "tprio", text: t("staff.waiting.priority", { priority }) }) : null;
  return name
    ? h("span", { class: "tname" }, name, badge)
    : h("span", { class: "tname anon" }, t("staff.noName"), badge);
}

/** The row's action buttons; the list's click listener (staff.js) reads `data-action`. */
function actions(item, names) {
  return h(
    "span",
    { class: "tacts" },
    ...names.map((action) =>
      h("button", {
        type: "button",
        "data-action": action,
        "data-testid": `${action}-${item.number}`,
        "aria-label": t("staff.action.label", { action: t(`staff.action.${action}`), number: item.number }),
        text: t(`staff.action.${action}`),
      }),
    ),
  );
}
