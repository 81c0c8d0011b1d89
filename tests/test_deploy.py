"""deploy/compose.yaml and deploy/haproxy.cfg, checked without a container engine: every vqueue
service runs a command this version's CLI accepts with variables server/config.py reads and
accepts, and the balancer's configuration is one HAProxy 2.6 accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import _parser
from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SAMPLE_SECRET = "s" * 40
# Every variable server/config.py reads: a quoted name passed to the environment mapping.
READ_VARIABLES = set(
    re.findall(r'"((?:VQ|REDIS|DATABASE)_[A-Z_]+)"', (ROOT / "server/config.py").read_text())
)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _interpolate(value: str) -> str:
    # ${NAME:?message} and ${NAME:-default}: what compose substitutes from the shell.
    return re.sub(r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: SAMPLE_SECRET, value)


def _vqueue_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _compose()["services"].items() if s.get("build") == ".."}


def test_the_compose_file_runs_nodes_a_balancer_a_redis_cluster_and_postgresql() -> None:
    services = _compose()["services"]
    nodes = [n for n, s in _vqueue_services().items() if s["command"][0] == "serve"]
    assert len(nodes) >= 2
    assert sum(1 for s in services.values() if "valkey-server" in s.get("command", [])) == 6
    assert services["balancer"]["image"].startswith("haproxy:2.6")
    assert services["postgres"]["image"].startswith("postgres:")
    for node in nodes:
        assert services[node]["environment"]["VQ_REDIS_CLUSTER"] == "true"
    # the balancer's fixed address is the one the nodes believe X-Forwarded-For from
    address = services["balancer"]["networks"]["backend"]["ipv4_address"]
    assert {services[n]["environment"]["VQ_TRUSTED_PROXIES"] for n in nodes} == {address}


@pytest.mark.parametrize("name", sorted(_vqueue_services()))
def test_each_vqueue_service_has_a_valid_command_and_variables(name: str) -> None:
    service = _vqueue_services()[name]
    _parser().parse_args(service["command"])  # exits (SystemExit) on an unknown command/option
    env = {key: _interpolate(str(value)) for key, value in service["environment"].items()}
    unknown = set(env) - READ_VARIABLES
    assert not unknown, f"{name} sets variables this version does not read: {unknown}"
    Settings.from_environ(env)  # and their values are valid (ConfigError otherwise)


def test_every_variable_read_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [v for v in sorted(READ_VARIABLES) if f"| `{v}` |" not in readme]
    assert not missing


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_accepts_the_balancer_configuration() -> None:
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
