// The admin page's plot of one day: people waiting (a line) and served (bars) per hour, as an
// inline SVG built from /stats (`throughput_per_hour`). No library, no CDN.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 260;
const PAD = { left: 44, right: 16, top: 16, bottom: 36 };
const HOUR_MS = 3600_000;

function el(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** A round top for the y axis: 1, 2 or 5 times a power of ten, at least `value`. */
export function niceMax(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** The 24 hourly slots from `dayStartMs`: {at, served, waiting}; `waiting` carries forward
 * through hours with no event (it is the line's length after the hour's last event). */
export function daySlots(rows, dayStartMs, nowMs) {
  const byHour = new Map(rows.map((row) => [Date.parse(row.hour), row]));
  const slots = [];
  let waiting = 0;
  for (let i = 0; i < 24; i += 1) {
    const at = dayStartMs + i * HOUR_MS;
    const row = byHour.get(at);
    if (row && typeof row.waiting === "number") waiting = row.waiting;
    slots.push({ at, served: row ? row.served : 0, waiting: at <= nowMs ? waiting : null });
  }
  return slots;
}

/** The SVG of the day's slots; `labels` = {title, desc, waiting, served, hour(ms) -> text}. */
export function dayPlot(slots, labels) {
  const top = niceMax(Math.max(1, ...slots.map((s) => Math.max(s.served, s.waiting ?? 0))));
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const slotW = innerW / slots.length;
  const y = (v) => PAD.top + innerH - (v / top) * innerH;
  const svg = el("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-labelledby": "plot-title plot-desc",
    class: "day-plot",
  });
  svg.append(el("title", { id: "plot-title" }, labels.title), el("desc", { id: "plot-desc" }, labels.desc));
  for (const v of top % 2 === 0 ? [0, top / 2, top] : [0, top]) {
    svg.append(el("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v), class: "grid-line" }));
    svg.append(el("text", { x: PAD.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v)));
  }
  slots.forEach((slot, i) => {
    const x = PAD.left + i * slotW;
    if (slot.served > 0) {
      const h = (slot.served / top) * innerH;
      svg.append(el("rect", { x: x + slotW * 0.2, y: y(slot.served), width: slotW * 0.6, height: h, class: "served" }));
    }
    if (i % 3 === 0) {
      svg.append(el("text", { x: x + slotW / 2, y: HEIGHT - PAD.bottom + 18, class: "axis", "text-anchor": "middle" }, labels.hour(slot.at)));
    }
  });
  const points = slots
    .map((slot, i) => (slot.waiting === null ? null : `${PAD.left + (i + 0.5) * slotW},${y(slot.waiting)}`))
    .filter((p) => p !== null);
  if (points.length > 0) svg.append(el("polyline", { points: points.join(" "), class: "waiting" }));
  const legend = el("g", { class: "legend", transform: `translate(${PAD.left + 8}, ${PAD.top + 4})` });
  legend.append(
    el("rect", { x: 0, y: 0, width: 14, height: 10, class: "served" }),
    el("text", { x: 20, y: 10, class: "axis" }, labels.served),
    el("line", { x1: 110, x2: 128, y1: 5, y2: 5, class: "waiting" }),
    el("text", { x: 134, y: 10, class: "axis" }, labels.waiting),
  );
  svg.append(legend);
  return svg;
}
