"""The HTML report: the headline figures with their ratios, then the plots, then the method.

One self-contained file (inline CSS and SVG, no scripts, nothing fetched) that opens anywhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

from loadtest import svg
from loadtest.report import METHOD

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
  background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:28px 20px 60px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:34px 0 10px}
.sub{color:#5b6475;margin-bottom:18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px #0001}
.card .k{color:#5b6475;font-size:13px}
.card .v{font-size:26px;font-weight:650}
.card .r{font-size:13px;color:#5b6475}
.ok{color:#1b7f3b}
.bad{color:#b3261e}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:10px;overflow:hidden;
  box-shadow:0 1px 3px #0001}
th,td{text-align:left;padding:7px 12px;border-bottom:1px solid #eceef2;
  font-variant-numeric:tabular-nums}
th{background:#eef0f4;font-weight:600}
td.n{text-align:right}
figure{background:#fff;border-radius:10px;padding:10px 12px;margin:0 0 14px;
  box-shadow:0 1px 3px #0001}
figcaption{color:#5b6475;font-size:13px;margin:4px 0 0 4px}
svg{width:100%;height:auto}
.plot{fill:#fff}
.grid{stroke:#e6e8ee}
.tick,.legend{font-size:11px;fill:#5b6475}
.axis{font-size:12px;fill:#1d2330}
.line{fill:none;stroke-width:2}
.s0{fill:#3866d6;stroke:#3866d6}
.s1{fill:#e07b26;stroke:#e07b26}
.s2{fill:#8a55c9;stroke:#8a55c9}
.line.s0,.line.s1,.line.s2{fill:none}
dl{background:#fff;border-radius:10px;padding:12px 18px;box-shadow:0 1px 3px #0001}
dt{font-weight:600;margin-top:8px}
dd{margin:2px 0 6px 0;color:#394152}
code{font-size:13px;background:#eef0f4;padding:1px 5px;border-radius:4px;word-break:break-all}
"""


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        text = f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return text + unit


REUSED_MEMORY = "not meaningful: the server reused memory that earlier runs freed; start it fresh"


def _ratio(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.2f}\u00d7"


def _card(label: str, value: str, note: str = "", good: bool | None = None) -> str:
    cls = "" if good is None else (" ok" if good else " bad")
    return (
        f'<div class="card"><div class="k">{escape(label)}</div><div class="v{cls}">{value}</div>'
        f'<div class="r">{escape(note)}</div></div>'
    )


def _pcts(s: dict[str, Any]) -> str:
    return f"{_num(s['p50'])} / {_num(s['p90'])} / {_num(s['p99'])} / {_num(s['max'])}"


def _target_cards(r: dict[str, Any]) -> list[str]:
    up, base, ratios = r["update_latency_ms"], r.get("baseline") or {}, r.get("ratios") or {}
    one = r["update_latency_per_call_ms"]
    p99_ratio, fps_ratio = ratios.get("per_call_p99_over_push_all"), ratios.get("frames_per_s")
    push_all = _num(base.get("push_all_ms"), " ms")
    p99_note = f"{_ratio(p99_ratio)} baseline push-all ({push_all})" if base else ""
    fps_note = f"{_ratio(fps_ratio)} baseline ({_num(base.get('frames_per_s'))})" if base else ""
    cards = [
        _card(
            "update latency p99 of one call-next (median)",
            _num(one["p99_median"], " ms"),
            p99_note or f"p50 {_num(up['p50'])} ms",
            None if p99_ratio is None else p99_ratio <= 1.5,
        ),
        _card(
            "position frames / s",
            _num(r["frames_per_s"]),
            fps_note,
            None if fps_ratio is None else fps_ratio >= 0.7,
        ),
    ]
    rss = r["server"].get("rss_per_watcher_kib")
    if rss is not None and rss < 1.0:  # Python kept memory that earlier runs freed
        cards.append(_card("server RSS per watcher", _num(rss, " KiB"), REUSED_MEMORY))
    elif rss is not None:
        cards.append(
            _card("server RSS per watcher", _num(rss, " KiB"), "target 24 KiB at most", rss <= 24)
        )
    return cards


def _cards(r: dict[str, Any]) -> str:
    join, errors = r["join_latency_ms"], r["errors"]
    cards = [
        *_target_cards(r),
        _card("join latency p99", _num(join["p99"], " ms"), f"p50 {_num(join['p50'], ' ms')}"),
        _card(
            "final position mismatches",
            _num(r["final_position_mismatches"]),
            f"{_num(r['final_checked'])} watchers checked",
            r["final_position_mismatches"] == 0,
        ),
        _card(
            "calls lost / called twice",
            f"{r['verdict']['checks']['calls_lost']} / {r['verdict']['checks']['calls_twice']}",
            "passed" if r["verdict"]["passed"] else "FAILED: " + ", ".join(r["verdict"]["failed"]),
            r["verdict"]["passed"],
        ),
    ]
    if r.get("reconnect_ms"):
        rc = r["reconnect_ms"]
        cards.append(_card("reconnect p99", _num(rc["p99"], " ms"), f"p50 {_num(rc['p50'])} ms"))
        after = r.get("update_latency_after_storm_ms") or {}
        if after.get("count"):
            note = f"p50 {_num(after['p50'])} ms, {after['calls']} calls"
            cards.append(_card("update p99 after the storm", _num(after["p99"], " ms"), note))
    if r.get("failover"):
        fo, rc = r["failover"], r["failover"]["recovery_ms"]
        note = f"{fo['recovered']}/{fo['watching']} back; p50 {_num(rc['p50'])} ms"
        cards.append(_card("failover p99", _num(rc["p99"], " ms"), note, not fo["not_recovered"]))
    top = ", ".join(f"{k} {v}" for k, v in list(errors.items())[:3])
    cards.append(_card("errors", _num(sum(errors.values())), top, not errors))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    base, ratios, server = r.get("baseline") or {}, r.get("ratios") or {}, r["server"]
    rows = [
        ("update latency (ms)", _pcts(r["update_latency_ms"]), "", ""),
        ("update latency from request (ms)", _pcts(r["update_latency_from_request_ms"]), "", ""),
        ("join latency (ms)", _pcts(r["join_latency_ms"]), "", ""),
    ]
    if base:
        rows.append(("baseline single-push arrival (ms)", "", _pcts(base["push_latency_ms"]), ""))
    return [
        *rows,
        ("one call-next's p99, median over calls (ms)",
         _num(r["update_latency_per_call_ms"]["p99_median"]), _num(base.get("push_all_ms")),
         _ratio(ratios.get("per_call_p99_over_push_all"))),
        ("update p99, all samples, vs baseline push-all (ms)", _num(r["update_latency_ms"]["p99"]),
         _num(base.get("push_all_ms")), _ratio(ratios.get("update_p99_over_push_all"))),
        ("frames / s", _num(r["frames_per_s"]), _num(base.get("frames_per_s")),
         _ratio(ratios.get("frames_per_s"))),
        ("peak frames / s (best 1 s)", _num(r.get("peak_frames_per_s")),
         _num(base.get("peak_frames_per_s")), ""),
        ("frames per server CPU-second", _num(server.get("frames_per_cpu_s")),
         _num(base.get("frames_per_cpu_s")), _ratio(ratios.get("frames_per_cpu_s"))),
        ("RSS per watcher (KiB)", _num(server.get("rss_per_watcher_kib")),
         _num(base.get("rss_per_watcher_kib")), _ratio(ratios.get("rss_per_watcher"))),
        ("calls made / attributed to a seq",
         f"{_num(r['calls']['made'])} / {_num(r['calls']['attributed'])}", "", ""),
        ("frames received", ", ".join(f"{k} {v:,}" for k, v in sorted(r["frames"].items())),
         "", ""),
    ]  # fmt: skip


def _table(r: dict[str, Any]) -> str:
    head = (
        "<tr><th>figure (p50 / p90 / p99 / max)</th><th>vqueue</th><th>baseline</th>"
        "<th>ratio</th></tr>"
    )
    body = "".join(
        f"<tr><td>{escape(a)}</td><td class=n>{b}</td><td class=n>{c}</td><td class=n>{d}</td></tr>"
        for a, b, c, d in _rows(r)
    )
    return f"<table>{head}{body}</table>"


def _histogram_plot(r: dict[str, Any]) -> str:
    hist = r["histogram"]
    groups = [("vqueue update latency", hist["counts"])]
    if hist.get("baseline_counts"):
        groups.append(("baseline push arrival", hist["baseline_counts"]))
    chart = svg.histogram(hist["edges_ms"], groups, "latency (ms, log scale)")
    caption = (
        "Update latency per (call, watcher), as a share of samples; the baseline's single-push "
        "arrivals beside it."
    )
    return _figure(chart, caption)


def _per_call_plot(r: dict[str, Any]) -> str:
    per_call = r["series"]["per_call"]
    if not per_call:
        return ""
    series = [
        svg.Series(name, [(row[0], row[i]) for row in per_call])
        for i, name in ((1, "p50"), (2, "p99"), (3, "max"))
    ]
    chart = svg.lines(series, "seconds since the first call (call answered)", "update latency (ms)")
    return _figure(chart, "Update latency over time: one point per call-next.")


def _rate_plot(r: dict[str, Any]) -> str:
    bucket = r["series"]["bucket_s"]

    def per_s(counts: list[int]) -> list[tuple[float, float]]:
        return [(i * bucket, c / bucket) for i, c in enumerate(counts)]

    rate = [svg.Series("vqueue", per_s(r["series"]["frames"]))]
    if r["series"].get("baseline_frames"):
        rate.append(svg.Series("baseline", per_s(r["series"]["baseline_frames"])))
    chart = svg.lines(rate, "seconds into the window", "position frames / s")
    caption = (
        "Frames received per second (0.1 s buckets): vqueue over its calls window, the baseline "
        "over its burst."
    )
    return _figure(chart, caption)


def _plots(r: dict[str, Any]) -> str:
    return _histogram_plot(r) + _per_call_plot(r) + _rate_plot(r)


def _figure(body: str, caption: str) -> str:
    return f"<figure>{body}<figcaption>{escape(caption)}</figcaption></figure>" if body else ""


def render(r: dict[str, Any]) -> str:
    machine = r["machine"]
    sub = (
        f"{escape(r['scenario'])} · {r['watchers']:,} watchers · {r['processes']} processes · "
        f"{_num(r['duration_s'])} s at {_num(r['call_rate'])} calls/s · "
        f"{escape(r['started_at'])} · {machine['cpus']} CPUs ({escape(machine['cpu_model'])}), "
        f"Python {escape(machine['python'])}"
    )
    method = "".join(
        f"<dt>{escape(k.replace('_', ' '))}</dt><dd>{escape(v)}</dd>" for k, v in METHOD.items()
    )
    phases = ", ".join(f"{escape(p['name'])} {p['start_s']:.1f}s" for p in r["phases"])
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>vqueue loadtest: {escape(r['scenario'])}</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<style>{CSS}</style><main>"
        f"<h1>vqueue loadtest</h1><div class=sub>{sub}</div>{_cards(r)}"
        f"<h2>Figures</h2>{_table(r)}<h2>Plots</h2>{_plots(r)}"
        f"<h2>How it was measured</h2><dl>{method}<dt>phases</dt><dd>{phases}</dd>"
        f"<dt>command</dt><dd><code>{escape(r['command'])}</code></dd></dl></main></html>"
    )
