"""A local Ray cluster for tests: real `ray start` processes, stopped by the PIDs this process
started (never `ray stop`, which would stop every Ray process on the machine).

All of its traffic stays on loopback because it lives in a network namespace of its own, where
127.0.0.1 is the only address: `--node-ip-address=127.0.0.1` alone is not enough (Ray moves a
joining client to the machine's address). We are root, so the test's main thread enters a fresh
namespace (`unshare(CLONE_NEWNET)`, then `ip link set lo up`); every process and thread it
starts from then on (the nodes, `labcoat run`, Ray's own threads in this process) lives there.
`leave()` puts the main thread back. The Docker socket is a unix socket, so every node reaches
the engine from inside the namespace.

Nodes get a private `--temp-dir`, fast failure detection (a killed raylet is declared dead
within about two seconds) and their own resources; each node's extra environment (a
`DOCKER_HOST` that does not answer, say) reaches the actors Ray starts on it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

CLONE_NEWNET = 0x40000000
PORT = 6379
BIN = Path(sys.executable).parent
FAST_FAILURE = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
                "RAY_health_check_timeout_ms": "1000", "RAY_USAGE_STATS_ENABLED": "0"}


class NetNs:
    """A network namespace for the main thread to enter and leave."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.host = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        if self.libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed (needs root)")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        self.own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    def enter(self) -> None:
        self._set(self.own)

    def leave(self) -> None:
        self._set(self.host)

    def _set(self, fd: int) -> None:
        if self.libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")

    def close(self) -> None:
        self.leave()
        os.close(self.own)
        os.close(self.host)


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    resources: dict[str, float] = field(default_factory=dict)
    killed: bool = False


class LocalCluster:
    """`ray start --head` and worker nodes in a private network namespace."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(f"/tmp/lc-{secrets.token_hex(3)}")  # sockets need short paths
        self.root.mkdir(parents=True, exist_ok=True)
        self.netns = NetNs()
        self.nodes: list[Node] = []
        self.address = f"127.0.0.1:{PORT}"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for processes that join the cluster (`labcoat run --cluster auto`)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return env | FAST_FAILURE | {"RAY_ADDRESS": self.address} | (extra or {})

    def start(self, sandboxes: float = 2, cpus: int = 2, object_store_mb: int = 200,
              env: dict[str, str] | None = None) -> Node:
        """Start the head (it offers `sandboxes` too); returns it once it answers."""
        args = ["--head", f"--port={PORT}", f"--temp-dir={self.root / 'ray'}",
                "--include-dashboard=false", "--disable-usage-stats"]
        return self._start("head", args, sandboxes, cpus, object_store_mb, env)

    def add_node(self, name: str, sandboxes: float = 2, cpus: int = 2,
                 object_store_mb: int = 200, env: dict[str, str] | None = None) -> Node:
        """A worker node with its own resources (and environment: its actors inherit it)."""
        return self._start(name, [f"--address={self.address}"], sandboxes, cpus,
                           object_store_mb, env)

    def _start(self, name: str, args: list[str], sandboxes: float, cpus: int, store_mb: int,
               env: dict[str, str] | None) -> Node:
        resources = {"labcoat_sandbox": sandboxes} if sandboxes else {}
        log = self.root / f"{name}.log"
        cmd = [str(BIN / "ray"), "start", *args, "--node-ip-address=127.0.0.1", "--block",
               f"--num-cpus={cpus}", f"--object-store-memory={store_mb * 1024 * 1024}",
               "--resources", _json(resources)]
        node_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    env=node_env | FAST_FAILURE | (env or {}))
        node = Node(name, proc, log, {"labcoat_sandbox": sandboxes, "CPU": cpus})
        self.nodes.append(node)
        self._wait_started(node)
        return node

    def _wait_started(self, node: Node, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "Ray runtime started" in node.log.read_text(errors="replace"):
                return
            if node.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"ray node {node.name} did not start:\n"
                           f"{node.log.read_text(errors='replace')[-3000:]}")

    def node_pids(self, node: Node) -> list[int]:
        """The node's processes: `ray start` and everything under it (raylet, workers, ...)."""
        try:
            top = psutil.Process(node.proc.pid)
            return [top.pid, *(p.pid for p in top.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def kill(self, node: Node) -> None:
        """SIGKILL every process of the node, as if its machine died."""
        for pid in self.node_pids(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.proc.wait(timeout=30)
        node.killed = True

    def stop(self) -> None:
        """Kill every process the cluster started (by PID), then leave the namespace."""
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()
        for node in reversed(self.nodes):
            if not node.killed:
                self.kill(node)
        for proc in _strays(str(self.root)):  # reparented when their parent died first
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self.netns.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _strays(marker: str) -> list[psutil.Process]:
    """Processes whose command line names this cluster's own temp dir (ours alone)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
    return found


def _json(data: dict[str, float]) -> str:
    import json

    return json.dumps(data)
