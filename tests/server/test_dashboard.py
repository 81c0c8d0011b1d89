"""The Grafana dashboard in deploy/ graphs only series the server exposes, and every family."""

from __future__ import annotations

import json
import re

from tests.conftest import ROOT
from tests.server.test_metrics import FAMILIES

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def test_dashboard_uses_real_series_and_covers_every_family() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bvqueue_[a-z_]+", e)}
    exposed = {f + s for f, kind in FAMILIES.items() for s in SUFFIXES[kind]}
    assert used <= exposed, used - exposed
    assert {f for f in FAMILIES if any(u.startswith(f) for u in used)} == set(FAMILIES)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
