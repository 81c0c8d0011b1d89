"""Colour contrast of the text in a page, measured in the browser (WCAG 2 relative luminance)."""

from __future__ import annotations

from playwright.sync_api import Page

# WCAG 2 contrast of every visible text node against the colours actually behind it (background
# layers composited, element opacity applied); returns the failures. Disabled controls are exempt.
LOW_CONTRAST = """(minimum) => {
  const parse = (css) => {
    const m = css.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3]));
  const channel = (v) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const lum = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const behind = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) layers.push(c);
      if (c && c[3] >= 1) break;
    }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255]);
  };
  const opacity = (el) => {
    let o = 1;
    for (let n = el; n; n = n.parentElement) o *= Number(getComputedStyle(n).opacity);
    return o;
  };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el.checkVisibility({ visibilityProperty: true })) continue;
    if (el.closest("button:disabled, input:disabled")) continue;
    const bg = behind(el);
    const fg = parse(getComputedStyle(el).color);
    const seen = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
    const r = ratio(seen, bg);
    const text = node.textContent.trim().slice(0, 40);
    if (r < minimum) failures.push(`${r.toFixed(2)} <${el.tagName} ${el.className}> ${text}`);
  }
  return failures;
}"""


def low_contrast(page: Page, minimum: float = 4.5) -> list[str]:
    """Text on `page` below `minimum` contrast (4.5:1: WCAG AA for body text)."""
    found: list[str] = page.evaluate(LOW_CONTRAST, minimum)
    return found
