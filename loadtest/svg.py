"""Small, dependency-free SVG charts for the HTML report: a histogram and line charts.

Each function returns one `<svg>` element as text, sized by a viewBox so it scales with the page.
Colours come from CSS classes the report's stylesheet defines (`s0`, `s1`, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def _frame(title_x: str, title_y: str, y_max: float, x_ticks: list[tuple[float, str]]) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>']
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt(value)}</text>"
        )
    for x, label in x_ticks:
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<text class="axis" x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{escape(title_x)}</text>"
    )
    out.append(
        f'<text class="axis" x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(title_y)}</text>'
    )
    return out


def _wrap(body: list[str], label: str) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def histogram(
    edges: Sequence[float], groups: Sequence[tuple[str, Sequence[int]]], x_title: str
) -> str:
    """Bars per log-spaced bin, one colour per group, as a share of each group's samples."""
    bins = len(edges) - 1
    if bins < 1 or not groups:
        return ""
    shares = [[c / max(1, sum(counts)) * 100 for c in counts] for _, counts in groups]
    y_max = _nice_max(max((max(s, default=0) for s in shares), default=1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / bins
    step = max(1, bins // 8)
    ticks = [(LEFT + i * slot, _fmt(edges[i])) for i in range(0, bins + 1, step)]
    body = _frame(x_title, "% of samples", y_max, ticks)
    width = slot / len(groups)
    for g, share in enumerate(shares):
        for i, value in enumerate(share):
            if value <= 0:
                continue
            h = plot_h * value / y_max
            x = LEFT + i * slot + g * width
            label = f"{groups[g][0]}: {_fmt(edges[i])}-{_fmt(edges[i + 1])} ms, {value:.1f}%"
            body.append(
                f'<rect class="s{g}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" '
                f'width="{max(width - 1, 1):.1f}" '
                f'height="{h:.1f}"><title>{escape(label)}</title></rect>'
            )
    return _wrap(body + _legend([name for name, _ in groups]), "latency histogram")


def lines(series: Sequence[Series], x_title: str, y_title: str) -> str:
    """Line charts sharing axes that start at zero."""
    points = [p for s in series for p in s.points]
    if not points:
        return ""
    x_max = _nice_max(max(x for x, _ in points))
    y_max = _nice_max(max(y for _, y in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ticks = [(LEFT + plot_w * i / 5, _fmt(x_max * i / 5)) for i in range(6)]
    body = _frame(x_title, y_title, y_max, ticks)
    for g, s in enumerate(series):
        coords = " ".join(
            f"{LEFT + plot_w * x / x_max:.1f},{TOP + plot_h - plot_h * y / y_max:.1f}"
            for x, y in s.points
        )
        body.append(f'<polyline class="line s{g}" points="{coords}"/>')
        if len(s.points) <= 60:
            for x, y in s.points:
                cx, cy = LEFT + plot_w * x / x_max, TOP + plot_h - plot_h * y / y_max
                body.append(
                    f'<circle class="s{g}" cx="{cx:.1f}" cy="{cy:.1f}" r="2.5">'
                    f"<title>{escape(s.name)}: {_fmt(y)} at {x:.1f} s</title></circle>"
                )
    return _wrap(body + _legend([s.name for s in series]), y_title)


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        x = LEFT + 10 + i * 150
        out.append(f'<rect class="s{i}" x="{x}" y="{TOP + 6}" width="10" height="10"/>')
        out.append(f'<text class="legend" x="{x + 14}" y="{TOP + 15}">{escape(name)}</text>')
    return out
