"""What the notifier delivers and costs, for `make bench`.

1. Mail lag: one server with an SMTP server in this process (aiosmtpd), `--tickets` tickets that
   each gave an email, then `--calls` calls at `--rate` per second; for each "your turn" mail,
   the time from the call request to the mail's arrival. Target: p99 under 1 s.
2. Fan-out cost: the fan-out run of `bench_metrics`, interleaved rounds against a server with
   `VQ_NOTIFY=true` and one with `VQ_NOTIFY=false`: median (lowest-highest); target: frames/s
   with the notifier on at least 90% of off.

Run alone: python -m loadtest.bench_notify [--tickets 10000] [--calls 3000] [--rate 50]
[--rounds 5] [--quick] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import httpx

from loadtest import bench_metrics
from loadtest.stats import percentile

TARGET_P99_S = 1.0
TARGET_RATIO = 0.90
JOIN_CONCURRENCY = 32


class Inbox:
    """Arrival time of the first "your turn" mail to each address (the SMTP server's thread)."""

    def __init__(self) -> None:
        self.turn_at: dict[str, float] = {}
        self.mails = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        arrived = time.time()
        headers = BytesHeaderParser().parsebytes(envelope.content)
        with self.lock:
            self.mails += 1
            if str(headers["Subject"]).startswith("Your turn"):
                for rcpt in envelope.rcpt_tos:
                    self.turn_at.setdefault(rcpt, arrived)
        return "250 OK"


async def _post(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """POST, again on a connection the busy server closed or a 503 (the Idempotency-Key makes
    a repeat answer the first answer)."""
    for attempt in range(5):
        try:
            r = await http.post(path, json=body, headers=headers)
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2)
            continue
        if r.status_code != 503 or attempt == 4:
            r.raise_for_status()
            return r
        await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def _drive(
    url: str, key: str, tickets: int, calls: int, rate: float, inbox: Inbox
) -> dict[str, Any]:
    staff = {"Authorization": f"Bearer {key}"}
    # Idle connections are dropped before the server's keep-alive (5 s) would close them under
    # a request; the call pool is wider than the join pool, so late answers do not hold calls.
    limits = httpx.Limits(max_connections=2 * JOIN_CONCURRENCY, keepalive_expiry=1.0)
    timeout = httpx.Timeout(30.0, pool=None)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        queue = "notify-bench"
        body = {"name": "Bench", "notify_ahead": 3, "channels": {"email": True}}
        r = await http.put(f"/v1/queues/{queue}", json=body, headers=staff)
        r.raise_for_status()
        address_of: dict[int, str] = {}
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)

        async def join(i: int) -> None:
            address = f"t{i}@bench.example"
            async with gate:
                r = await _post(
                    http,
                    f"/v1/queues/{queue}/tickets",
                    {"contact": {"email": address}},
                    {**staff, "Idempotency-Key": f"bench-join-{i}"},
                )
            address_of[int(r.json()["number"])] = address

        started = time.monotonic()
        await asyncio.gather(*(join(i) for i in range(tickets)))
        join_s = time.monotonic() - started
        sent_at: dict[str, float] = {}  # address -> when its call was asked for
        answered_at: dict[str, float] = {}  # address -> when the call was answered (it exists)
        t0 = time.monotonic()

        async def call(k: int) -> None:
            await asyncio.sleep(max(0.0, t0 + k / rate - time.monotonic()))
            at = time.time()
            r = await _post(
                http,
                f"/v1/queues/{queue}/call-next",
                {"counter": "desk 1"},
                {**staff, "Idempotency-Key": f"bench-call-{k}"},
            )
            address = address_of[int(r.json()["number"])]
            sent_at[address], answered_at[address] = at, time.time()

        await asyncio.gather(*(call(k) for k in range(calls)))
        achieved_rate = calls / (time.monotonic() - t0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with inbox.lock:
                if all(a in inbox.turn_at for a in sent_at):
                    break
            await asyncio.sleep(0.2)
        ready = (await http.get("/readyz")).json()
    with inbox.lock:
        lags = sorted(inbox.turn_at[a] - at for a, at in answered_at.items() if a in inbox.turn_at)
        from_request = sorted(
            inbox.turn_at[a] - at for a, at in sent_at.items() if a in inbox.turn_at
        )
        call_ms = sorted((answered_at[a] - sent_at[a]) * 1000 for a in sent_at)
        mails = inbox.mails
    return {
        "tickets": tickets,
        "calls": calls,
        "rate": rate,
        "achieved_rate": achieved_rate,
        "join_s": join_s,
        "mails": mails,
        "turn_mails": len(lags),
        "missing": len(sent_at) - len(lags),
        "lag_p50_s": percentile(lags, 50) if lags else None,
        "lag_p99_s": percentile(lags, 99) if lags else None,
        "lag_max_s": lags[-1] if lags else None,
        "from_request_p99_s": percentile(from_request, 99) if from_request else None,
        "call_p99_ms": percentile(call_ms, 99) if call_ms else None,
        "notifier": ready.get("notifications"),
    }


def mail_lag(work: Path, tickets: int, calls: int, rate: float) -> dict[str, Any]:
    from aiosmtpd.controller import Controller

    from loadtest.bench import Server, _free_port

    inbox = Inbox()
    smtp_port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    server = Server(
        work / "notify-mail",
        _free_port(),
        {"VQ_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}", "VQ_MAIL_FROM": "bench@vqueue.example"},
    )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    key = bench_metrics._staff_key(
        server.vqueue("venue", "create", "Bench", "--json").strip().splitlines()[-1]
    )
    load_before = os.getloadavg()
    try:
        server.start()
        result = asyncio.run(_drive(server.url, key, tickets, calls, rate, inbox))
    finally:
        server.stop()
        controller.stop()
    result["load_before"] = load_before
    result["load_after"] = os.getloadavg()
    result["command"] = (
        f"python -m loadtest.bench_notify --tickets {tickets} --calls {calls} --rate {rate:g}"
    )
    return result


def _ms(figures: dict[str, Any], name: str) -> str:
    value = figures.get(name)
    return "-" if value is None else f"{value:,.0f} ms"


def section(lag: dict[str, Any], fanout: dict[str, Any]) -> str:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:,.0f} ms"

    notifier = lag.get("notifier") or {}
    met_lag = (
        lag["lag_p99_s"] is not None and lag["lag_p99_s"] < TARGET_P99_S and lag["missing"] == 0
    )
    ratio = fanout["frames_ratio"]
    met_fanout = ratio is not None and ratio >= TARGET_RATIO
    load = " / ".join(f"{x:.2f}" for x in lag["load_before"])
    load_after = " / ".join(f"{x:.2f}" for x in lag["load_after"])
    lines = [
        '## Notifications: "your turn" mail lag, and the fan-out with the notifier on vs off',
        "",
        f"{lag['tickets']:,} tickets that each gave an email (joined in {lag['join_s']:.1f} s), "
        f"then {lag['calls']:,} calls at {lag['rate']:g}/s (achieved "
        f"{lag['achieved_rate']:.1f}/s) on one node, its SMTP server (aiosmtpd) in the bench "
        "process. Lag: from the call-next answer (the call exists) to the mail's arrival; the "
        "p99 counted from the call request, and the call-next p99 itself, are shown too. Load "
        "average (1/5/15 min) before: "
        f"{load}; after: {load_after}.",
        "",
        "| | figure |",
        "|---|---:|",
        f'| "your turn" mails received / calls | {lag["turn_mails"]:,} / {lag["calls"]:,} |',
        f'| mails in all (with "almost your turn") | {lag["mails"]:,} |',
        f"| lag p50 | {s(lag['lag_p50_s'])} |",
        f"| lag p99 | {s(lag['lag_p99_s'])} |",
        f"| lag max | {s(lag['lag_max_s'])} |",
        f"| lag p99 from the call request | {s(lag['from_request_p99_s'])} |",
        f"| call-next answer p99 | {_ms(lag, 'call_p99_ms')} |",
        "| notifier (`/readyz`): event to planned / planned to sent / attempt, p99 | "
        f"{_ms(notifier, 'plan_lag_p99_ms')} / {_ms(notifier, 'send_lag_p99_ms')} / "
        f"{_ms(notifier, 'attempt_p99_ms')} |",
        "",
        f"Target: p99 under {TARGET_P99_S:g} s, none missing: "
        f"{'**yes**' if met_lag else '**NO**'}.",
        "",
        f"The fan-out run of the metrics section, {fanout['rounds']} interleaved rounds against a "
        "server with `VQ_NOTIFY=true` and one with `VQ_NOTIFY=false`: median (lowest-highest); on /"
        " off is the median of each round's own ratio.",
        "",
        "| | notifier on | notifier off | on / off |",
        "|---|---:|---:|---:|",
        *bench_metrics.rows(fanout),
        "",
        f"Target: frames/s with the notifier on >= {TARGET_RATIO:.2f}x off: "
        f"{'**yes**' if met_fanout else '**NO**'}.",
        "",
        "```",
        lag["command"],
        *fanout["commands"],
        "```",
        "",
    ]
    return "\n".join(lines)


def run(work: Path, tickets: int, calls: int, rate: float, rounds: int, quick: bool) -> str:
    lag = mail_lag(work, tickets, calls, rate)
    fanout = bench_metrics.summary(
        bench_metrics.measure(work, rounds, quick, "VQ_NOTIFY", "notify")
    )
    return section(lag, fanout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_notify", description=__doc__)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller runs, for trying it out")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vqueue-bench-notify-"))
    tickets, calls = (2_000, 500) if args.quick else (args.tickets, args.calls)
    text = run(work, tickets, calls, args.rate, args.rounds, args.quick)
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
