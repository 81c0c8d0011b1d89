// The display board, /board/{queue}: who is called to which counter, and how many wait.
// The server pushes it (`watch_board` on the WebSocket); the board keeps the last picture while
// it reconnects. Names appear only when the queue's `board_names` setting allows them (the
// server leaves them out otherwise).
import { loadMessages, locale, t, translate } from "./i18n.js";
import { byId, h, pageQueue, renderList, reveal } from "./ui.js";
import { Client, VQueueError } from "./vqueue.js";

const MAX_TILES = 7; // the latest call across the top, two rows of three below
const queue = pageQueue();
const client = new Client();

let latestCall = null;
let clockFormat = null;
let queueName = queue;
let archived = false; // retired by the venue: the board says so instead of "closed"

async function main() {
  await loadMessages();
  translate();
  clockFormat = new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" });
  byId("queue-name").textContent = queue;
  showJoin();
  tick();
  try {
    const info = await client.queue(queue); // once: the board's title
    queueName = info.name || queue;
    archived = info.archived === true;
  } catch (error) {
    if (error instanceof VQueueError && error.status === 404) return missing();
  }
  const live = client.watchBoard(queue);
  live.on("board", (event) => render(event.detail));
  live.on("state", (event) => {
    byId("offline").hidden = event.detail.state !== "reconnecting";
  });
  live.on("end", (event) => event.detail.reason === "queue_not_found" && missing());
  reveal();
}

function missing() {
  byId("banner").hidden = false;
  byId("banner").textContent = t("board.missing");
  reveal();
}

function render(board) {
  byId("queue-name").textContent = queueName;
  document.title = t("board.title", { queue: queueName });
  byId("waiting-count").textContent = String(board.waiting_count);
  const banner = byId("banner");
  banner.hidden = board.state === "open";
  banner.dataset.state = board.state;
  const state = archived && board.state === "closed" ? "archived" : board.state;
  banner.textContent = board.state === "open" ? "" : t(`board.state.${state}`);
  const entries = [...board.called].reverse().slice(0, MAX_TILES); // the latest call first
  const top = entries[0] ? `${entries[0].number}@${entries[0].counter}` : null;
  const isNew = latestCall !== null && top !== null && top !== latestCall;
  latestCall = top ?? latestCall;
  renderList(byId("now-serving"), entries, (entry, index) => tile(entry, index, isNew));
  byId("idle").hidden = entries.length > 0;
}

function tile(entry, index, isNew) {
  const classes = ["tile"];
  if (index === 0) classes.push("latest");
  if (index === 0 && isNew) classes.push("fresh");
  const where = entry.counter || t("board.anyCounter");
  const label = t("board.tileLabel", { number: entry.number, counter: where });
  return h(
    "div",
    { class: classes.join(" "), "data-number": entry.number, role: "group", "aria-label": label },
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
