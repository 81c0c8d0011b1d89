// The display board, /board/{queue}: who is called to which counter, and how many wait.
// It polls the public board JSON every second and keeps the last picture when offline.
import { loadMessages, locale, t, translate } from "./i18n.js";
import { byId, h, pageQueue, renderList, reveal } from "./ui.js";
import { Client, VQueueError } from "./vqueue.js";

const POLL_MS = 1000;
const MAX_TILES = 7; // the latest call across the top, two rows of three below
const queue = pageQueue();
const client = new Client();
const path = `/v1/queues/${encodeURIComponent(queue)}/board`;

let latestCall = null;
let clockFormat = null;

async function main() {
  await loadMessages();
  translate();
  clockFormat = new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" });
  byId("queue-name").textContent = queue;
  showJoin();
  tick();
  await poll();
  reveal();
}

async function poll() {
  try {
    render(await client.request("GET", path));
    byId("offline").hidden = true;
  } catch (error) {
    if (error instanceof VQueueError && error.status === 404) {
      byId("banner").hidden = false;
      byId("banner").textContent = t("board.missing");
    } else {
      byId("offline").hidden = false;
    }
  }
  setTimeout(poll, POLL_MS);
}

function render(board) {
  const name = board.name || queue;
  byId("queue-name").textContent = name;
  document.title = t("board.title", { queue: name });
  byId("waiting-count").textContent = String(board.waiting);
  const banner = byId("banner");
  banner.hidden = board.state === "open";
  banner.dataset.state = board.state;
  banner.textContent = board.state === "open" ? "" : t(`board.state.${board.state}`);
  const entries = board.counters.slice(0, MAX_TILES);
  const top = entries[0]?.ticket_id ?? null;
  const isNew = latestCall !== null && top !== null && top !== latestCall;
  latestCall = top ?? latestCall;
  renderList(byId("now-serving"), entries, (entry, index) => tile(entry, index, isNew));
  byId("idle").hidden = entries.length > 0;
}

function tile(entry, index, isNew) {
  const classes = ["tile"];
  if (index === 0 && entry.status === "called") classes.push("latest");
  if (index === 0 && isNew) classes.push("fresh");
  if (entry.status !== "called") classes.push("done");
  const where = entry.counter || t("board.anyCounter");
  const label = t("board.tileLabel", { number: entry.number, counter: where });
  return h(
    "div",
    { class: classes.join(" "), "data-ticket": entry.ticket_id, role: "group", "aria-label": label },
    h("span", { class: "number", text: String(entry.number) }),
    h(
      "div",
      { class: "where" },
      h("p", { class: "counter", text: where }),
      entry.name ? h("p", { class: "name", text: entry.name }) : null,
    ),
  );
}

function showJoin() {
  const url = `${location.origin}/q/${encodeURIComponent(queue)}`;
  byId("qr").src = `/v1/queues/${encodeURIComponent(queue)}/qr.svg`;
  byId("qr").alt = t("board.qrAlt");
  byId("join-url").textContent = url.replace(/^https?:\/\//, "");
}

function tick() {
  byId("clock").textContent = clockFormat.format(new Date());
  setTimeout(tick, 1000 * (60 - new Date().getSeconds()));
}

main();
