"""What one harness run is asked to do."""

from __future__ import annotations

import enum
import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# The listen backlog `vqueue serve` has by default (VQ_LISTEN_BACKLOG); `--backlog` for another.
# In a connect storm a full accept queue drops connections and their clients retry a second
# later, so both sides of a comparison must have the same one.
BACKLOG = 4096

MAX_SOCKETS_PER_PROCESS = 18_000  # the open-file limit is 20,000; keep room for the rest


class Scenario(enum.Enum):
    STEADY = "steady"
    JOIN_SPIKE = "join-spike"
    RECONNECT_STORM = "reconnect-storm"
    SLOW_READERS = "slow-readers"
    FAILOVER = "failover"
    PRIORITY_JOIN = "priority-join"


@dataclass(frozen=True)
class Options:
    url: str
    queue: str
    staff_key: str
    scenario: Scenario = Scenario.STEADY
    watchers: int = 500
    duration_s: float = 30.0
    call_rate: float = 2.0
    processes: int = 1
    json_path: Path | None = None
    html_path: Path | None = None
    baseline: bool = False
    join_rate: float | None = None  # None: call rate + leave rate, so the line keeps its length
    leave_rate: float = 0.2
    slow_share: float = 0.1
    storm_keep: int = 0  # reconnect-storm: watchers whose socket stays up through the storm
    codec: str = "vq1.json"
    join_concurrency: int = 32
    harness_cpus: tuple[int, ...] | None = None
    baseline_cpus: tuple[int, ...] | None = None
    backlog: int = BACKLOG  # the bare server's listen backlog: the server's VQ_LISTEN_BACKLOG
    server_pid: int | None = None
    quiet_s: float = 1.5
    progress: bool = True
    seed: int = 1
    failover_urls: tuple[str, ...] = ()  # failover: the nodes that stay up
    kill_pid: int | None = None  # failover: the local process of the node at `url`

    @property
    def urls(self) -> tuple[str, ...]:
        """Every node `--url` names (a comma-separated list): process i uses node i mod n."""
        return tuple(u.strip().rstrip("/") for u in self.url.split(",") if u.strip())

    @property
    def ws_url(self) -> str:
        return self.node_ws_url(0)

    @property
    def resume_ws_urls(self) -> tuple[str, ...]:
        """Where a dropped watcher reconnects: the surviving nodes, else where it was."""
        return tuple(ws_url_of(u) for u in self.failover_urls)

    @property
    def http_url(self) -> str:
        """Where joins and staff calls go: a surviving node when one is to be killed."""
        return (self.failover_urls[0] if self.failover_urls else self.base_url).rstrip("/")

    @property
    def base_url(self) -> str:
        """The first node: the staff calls and the final checks go there."""
        return self.urls[0]

    def node_base_url(self, process: int) -> str:
        return self.urls[process % len(self.urls)]

    def node_ws_url(self, process: int) -> str:
        return ws_url_of(self.node_base_url(process))

    @property
    def churn_join_rate(self) -> float:
        return self.call_rate + self.leave_rate if self.join_rate is None else self.join_rate

    def source_addresses(self) -> list[str | None]:
        """One loopback source address per process (127.0.0.2, .3, ...) on a loopback target.

        One source address reaches one server port only ~28k times (docs/architecture.md); spreading
        also keeps each process's sockets apart in the kernel's tables.
        """
        if not self.loopback:
            return [None] * self.processes
        return [f"127.0.0.{2 + i}" for i in range(self.processes)]

    @property
    def loopback(self) -> bool:
        """The server is on this host (127.x or localhost): its kernel counters are ours."""
        host = urlsplit(self.base_url).hostname or ""
        try:
            return ipaddress.ip_address(host).version == 4 and host.startswith("127.")
        except ValueError:
            return host == "localhost"

    def shares(self, total: int) -> list[int]:
        """`total` split over the processes as evenly as possible."""
        base, extra = divmod(total, self.processes)
        return [base + (1 if i < extra else 0) for i in range(self.processes)]

    def kept_per_process(self) -> list[int]:
        """`storm_keep` over the processes, whole processes first: a process timing the kept
        watchers is then not also busy reconnecting the others (its own CPU would delay what it
        reads, and that is the client machine, not the server)."""
        kept = []
        left = self.storm_keep
        for share in self.shares(self.watchers):
            kept.append(min(left, share))
            left -= kept[-1]
        return kept

    def check(self) -> str | None:
        """A problem with these options, in words, or None."""
        if not self.urls or any(urlsplit(u).scheme != "http" for u in self.urls):
            return "--url must be http:// URLs (one, or several separated by commas)"
        if self.watchers < 1 or self.processes < 1:
            return "--watchers and --processes must be at least 1"
        per_process = math.ceil(self.watchers / self.processes) * (2 if self.baseline else 1)
        if per_process > MAX_SOCKETS_PER_PROCESS:
            need = math.ceil(self.watchers * (2 if self.baseline else 1) / MAX_SOCKETS_PER_PROCESS)
            return f"{per_process} sockets per process is too many: use --processes {need} or more"
        if self.duration_s <= 0 or self.call_rate < 0:
            return "--duration must be positive and --call-rate not negative"
        if not 0.0 <= self.slow_share < 1.0:
            return "--slow-share must be in [0, 1)"
        if self.storm_keep and self.scenario is not Scenario.RECONNECT_STORM:
            return "--storm-keep is for --scenario reconnect-storm"
        if not 0 <= self.storm_keep < self.watchers:
            return "--storm-keep must be at least 0 and fewer than --watchers"
        if (self.scenario is Scenario.FAILOVER) != bool(self.failover_urls and self.kill_pid):
            return "--scenario failover takes --kill-pid and --failover-url (and only it does)"
        if any(urlsplit(u).scheme != "http" for u in self.failover_urls):
            return "--failover-url must be an http:// URL"
        return None


def ws_url_of(url: str) -> str:
    return f"ws://{urlsplit(url).netloc}/v1/ws"
