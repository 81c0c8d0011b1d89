"""deploy/compose.yaml and deploy/haproxy.cfg, checked without a container engine: every vqueue
service runs a command this version's CLI accepts, through the image's `vqueue` entrypoint, with
only variables server/config.py reads, values it accepts, and the deployment's own Redis and
PostgreSQL (never embedded ones in a container); and the balancer's configuration is one HAProxy
2.6 accepts. Each check is shown to fail on a compose file with one thing wrong."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import _parser
from server.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SAMPLE_SECRET = "s" * 40


class _Reads(Mapping[str, str]):
    """An empty environment that notes every name looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        self.names.add(name)
        return default

    def __contains__(self, name: object) -> bool:
        self.names.add(str(name))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _read_variables() -> set[str]:
    """Every variable `Settings.from_environ` looks up: what server/config.py reads."""
    reads = _Reads()
    Settings.from_environ(reads)
    return reads.names


READ_VARIABLES = _read_variables()


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _interpolate(value: str) -> str:
    # ${NAME:?message} and ${NAME:-default}: what compose substitutes from the shell.
    return re.sub(r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: SAMPLE_SECRET, value)


def _vqueue_services(compose: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    services = (compose or _compose())["services"]
    return {n: s for n, s in services.items() if s.get("build") == ".."}


def problems(service: dict[str, Any]) -> list[str]:
    """What is wrong with one vqueue service for this version (nothing: an empty list)."""
    found: list[str] = []
    try:
        _parser().parse_args([str(arg) for arg in service.get("command", [])])
    except SystemExit:  # argparse's answer to an unknown command or option
        found.append(f"command {service.get('command')} is not one the CLI accepts")
    env = {key: _interpolate(str(value)) for key, value in service.get("environment", {}).items()}
    unknown = sorted(set(env) - READ_VARIABLES)
    if unknown:
        found.append(f"variables this version does not read: {unknown}")
    try:
        settings = Settings.from_environ(env)
    except ConfigError as exc:
        found.append(f"a value server/config.py refuses: {exc}")
    else:
        if settings.embedded:  # it would start its own Redis or PostgreSQL in the container
            found.append("REDIS_URL or DATABASE_URL unset: the service would embed its own")
    return found


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
    assert problems(_vqueue_services()[name]) == []


def test_the_image_runs_the_vqueue_command() -> None:
    """The services' commands are `vqueue` arguments: the image's entrypoint is that script."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["vqueue"]' in dockerfile
    assert 'vqueue = "server.cli:main"' in (ROOT / "pyproject.toml").read_text()


def _broken(change: Any) -> list[str]:
    compose = copy.deepcopy(_compose())
    service = _vqueue_services(compose)["node1"]
    service["environment"] = dict(service["environment"])
    change(service)
    return problems(service)


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("an unknown option", lambda s: s.__setitem__("command", ["serve", "--hots", "0.0.0.0"])),
        ("an unknown command", lambda s: s.__setitem__("command", ["run"])),
        ("an unknown variable", lambda s: s["environment"].__setitem__("VQ_FLUSH_MSS", "50")),
        ("a bad value", lambda s: s["environment"].__setitem__("VQ_REDIS_CLUSTER", "maybe")),
        ("a short secret", lambda s: s["environment"].__setitem__("VQ_SECRET_KEY", "short")),
        ("no Redis", lambda s: s["environment"].pop("REDIS_URL")),
    ],
)
def test_the_check_fails_on_a_service_with_one_thing_wrong(what: str, change: Any) -> None:
    assert problems(_vqueue_services()["node1"]) == []  # the same service, unbroken
    assert len(_broken(change)) == 1, what


def test_the_variables_read_are_found_by_running_the_config() -> None:
    assert {"REDIS_URL", "DATABASE_URL", "VQ_SECRET_KEY", "VQ_REDIS_CLUSTER"} <= READ_VARIABLES
    assert "VQ_FORWARDED_ALLOW_IPS" not in READ_VARIABLES  # a variable of an earlier version


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
