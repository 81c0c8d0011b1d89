// User-facing text for every page lives in /static/i18n/<lang>.json (one file per language, flat
// keys, "{name}" placeholders, plural forms as {"one": ..., "other": ...}). A translation is a
// new JSON file plus its code in AVAILABLE.
const AVAILABLE = ["en"];
const FALLBACK = "en";

let lang = FALLBACK;
let catalog = {};
let plurals = new Intl.PluralRules(FALLBACK);
let numbers = new Intl.NumberFormat(FALLBACK);

function pickLanguage() {
  for (const wanted of navigator.languages ?? [navigator.language]) {
    const base = String(wanted).toLowerCase().split("-")[0];
    if (AVAILABLE.includes(base)) return base;
  }
  return FALLBACK;
}

export async function loadMessages() {
  lang = pickLanguage();
  const response = await fetch(`/static/i18n/${lang}.json`);
  catalog = await response.json();
  plurals = new Intl.PluralRules(lang);
  numbers = new Intl.NumberFormat(lang);
  document.documentElement.lang = lang;
}

export function locale() {
  return lang;
}

/** The text for `key`, with {placeholders} filled from `vars`; `vars.count` picks a plural. */
export function t(key, vars = {}) {
  let text = catalog[key];
  if (text !== null && typeof text === "object") {
    text = text[plurals.select(vars.count ?? 0)] ?? text.other;
  }
  if (typeof text !== "string") return key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in vars)) return whole;
    const value = vars[name];
    return typeof value === "number" ? numbers.format(value) : String(value);
  });
}

/** Fill every [data-i18n] element's text, and [data-i18n-label|placeholder|title] attributes. */
export function translate(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  const attributes = { i18nLabel: "aria-label", i18nPlaceholder: "placeholder", i18nTitle: "title" };
  for (const [data, attribute] of Object.entries(attributes)) {
    const selector = `[data-${data.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const node of root.querySelectorAll(selector)) {
      node.setAttribute(attribute, t(node.dataset[data]));
    }
  }
}

/** "about 5 minutes", "less than a minute", or the text for "not known yet". */
export function formatWait(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return t("wait.unknown");
  if (seconds < 60) return t("wait.underMinute");
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return t("wait.minutes", { count: minutes });
  const hours = Math.floor(minutes / 60);
  return t("wait.hours", { count: hours, minutes: minutes % 60 });
}

/** A duration for a figure in the console ("4 min", "1 h 05 min"), or "—". */
export function formatShortDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return t("none");
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return t("duration.minutes", { count: minutes });
  const rest = String(minutes % 60).padStart(2, "0");
  return t("duration.hours", { count: Math.floor(minutes / 60), minutes: rest });
}
