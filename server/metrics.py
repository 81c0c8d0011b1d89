"""Prometheus metrics (`GET /metrics`), counted where it costs least.

Request-path counts (`server.counters.Tally`) are plain integers that handlers bump; the
fan-out's figures (frames sent, watchers, resyncs) and the persister's backlog are read from
the objects that already keep them, at scrape time, by `NodeCollector`. The only per-flush cost
on the fan-out's hot path is `server.counters.observe_push`, one histogram observation per
flush, never one per frame.

With `VQ_METRICS=false` requests are not counted by route, `observe_push` returns at once, and
`/metrics` answers 404: the benchmark compares the two.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth import bearer
from server.clientaddr import client_address
from server.config import Settings
from server.counters import PUSH_LATENCY, Tally
from server.errors import ApiError
from server.limits import Refused
from server.outbox import SENT
from server.services import Services, services

# No `_created` series: they would double every counter and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Not registered anywhere at import: each app registers it in its own registry, so two apps
# in one process (tests) do not collide.
HTTP_REQUESTS = Counter(
    "vqueue_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
    registry=None,
)


class NodeCollector(Collector):
    """This node's figures, read at scrape time from the objects that already keep them."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        fanout = self.svc.fanout
        yield CounterMetricFamily(
            "vqueue_joins", "Tickets issued by this node (201 joins)", value=Tally.joins
        )
        yield CounterMetricFamily(
            "vqueue_calls", "Tickets called by call-next on this node", value=Tally.calls
        )
        yield GaugeMetricFamily(
            "vqueue_watchers", "WebSocket watchers connected to this node", fanout.watcher_count
        )
        yield CounterMetricFamily(
            "vqueue_frames_sent", "WebSocket frames written to watchers", value=SENT.value
        )
        resyncs = CounterMetricFamily(
            "vqueue_resyncs", "Queue reloads from a Redis snapshot, by cause", labels=["reason"]
        )
        for reason, count in fanout.resyncs.items():
            resyncs.add_metric([reason], count)
        yield resyncs
        backlog = 0
        if self.svc.persister is not None:
            backlog = int(self.svc.persister.status()["backlog_events"])
        yield GaugeMetricFamily(
            "vqueue_persist_backlog_events", "Queue events not yet written to PostgreSQL", backlog
        )
        notifier = self.svc.notifier
        yield GaugeMetricFamily(
            "vqueue_notify_backlog",
            "Queue events the notifier has not handled plus deliveries not yet made",
            0 if notifier is None else notifier.backlog,
        )
        yield GaugeMetricFamily(
            "vqueue_notify_dead",
            "Deliveries (webhooks, emails, SMS, pushes) given up after their last retry",
            0 if notifier is None else notifier.counts["dead"],
        )
        yield CounterMetricFamily(
            "vqueue_rate_limited",
            "Requests refused by the rate limits (429)",
            value=Refused.rate_limited_total,
        )


def build_registry(svc: Services) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(HTTP_REQUESTS)
    registry.register(PUSH_LATENCY)
    registry.register(NodeCollector(svc))
    return registry


def operator_allowed(request: Request, settings: Settings) -> bool:
    """Loopback clients (as resolved behind trusted proxies) or `Bearer $VQ_METRICS_TOKEN`."""
    token = settings.metrics_token
    given = bearer(request.headers.get("authorization"))
    if token is not None and given is not None and hmac.compare_digest(given, token.reveal()):
        return True
    return client_address(request.scope, settings.trusted_proxies).is_loopback


async def metrics(request: Request) -> Response:
    svc = services(request)
    registry = svc.metrics
    if registry is None:
        raise ApiError.from_code("not_found", "metrics are turned off (VQ_METRICS=false)")
    if not operator_allowed(request, svc.settings):
        raise ApiError.from_code(
            "unauthorized", "metrics need a loopback client or the metrics token"
        )
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
