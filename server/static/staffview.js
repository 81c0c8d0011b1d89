// The staff console's rendering: each function draws one part of the page from the data given.
import { formatShortDuration, t } from "./i18n.js";
import { byId, h, renderList } from "./ui.js";

const MAX_SHOWN = 50;

/** The queue state badge and the controls that depend on it. `closeArmed`: the close button is
 * waiting for its confirming second click, so its label is left alone. */
export function state(queueState, busy, closeArmed) {
  const badge = byId("state-badge");
  badge.hidden = false;
  badge.dataset.state = queueState;
  badge.textContent = t(`staff.state.${queueState}`);
  const paused = queueState === "paused";
  const closed = queueState === "closed";
  byId("pause-text").textContent = t(paused ? "staff.controls.resume" : "staff.controls.pause");
  byId("pause").disabled = closed;
  if (!closeArmed) {
    byId("close").textContent = t(closed ? "staff.controls.open" : "staff.controls.close");
  }
  byId("state-hint").textContent = t(`staff.controls.hint.${queueState}`);
  byId("call-next").disabled = busy || paused;
}

export function waiting(tickets) {
  const shown = tickets.slice(0, MAX_SHOWN);
  renderList(byId("waiting-list"), shown, (item) =>
    h(
      "li",
      { "data-ticket": item.ticket_id },
      h("span", { class: "tnum", text: String(item.number) }),
      nameCell(item.name),
      h("span", { class: "tmeta", text: t("staff.waiting.position", { position: item.position }) }),
    ),
  );
  byId("waiting-count").textContent = String(tickets.length);
  byId("waiting-empty").hidden = tickets.length > 0;
  const more = tickets.length - shown.length;
  byId("waiting-more").textContent = more > 0 ? t("staff.waiting.more", { count: more }) : "";
}

/** Tickets being served, latest call first; this desk's own is highlighted. */
export function called(tickets, current) {
  const now = Date.now();
  const latestFirst = [...tickets].reverse().slice(0, MAX_SHOWN);
  renderList(byId("called-list"), latestFirst, (item) => {
    const minutes = Math.max(0, Math.floor((now - (item.called_at_ms ?? now)) / 60_000));
    const where = item.counter || t("staff.called.noCounter");
    const mine = item.ticket_id === current?.ticket_id;
    return h(
      "li",
      { class: mine ? "mine" : null, "data-ticket": item.ticket_id },
      h("span", { class: "tnum", text: String(item.number) }),
      nameCell(item.name),
      h("span", { class: "tmeta", text: t("staff.called.meta", { counter: where, minutes }) }),
    );
  });
  byId("called-empty").hidden = tickets.length > 0;
}

/** The ticket at this desk, and the buttons that act on it. */
export function current(ticket, busy) {
  byId("current-number").textContent = ticket ? String(ticket.number) : t("none");
  const name = ticket ? ticket.name || t("staff.noName") : t("staff.desk.idle");
  byId("current-name").textContent = name;
  byId("served").disabled = busy || !ticket;
  byId("no-show").disabled = busy || !ticket;
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

function nameCell(name) {
  return name
    ? h("span", { class: "tname", text: name })
    : h("span", { class: "tname anon", text: t("staff.noName") });
}
