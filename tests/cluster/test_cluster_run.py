"""A real run on a local two-node Ray cluster: `labcoat run --cluster auto --parallel 2` whose
sandboxes land on both nodes; the second node killed (every process, SIGKILL) while a sandbox of
the run is on it, then labcoat itself (SIGKILL); `labcoat resume --cluster auto` finishes the run
with nothing lost, the log names the lost node and the re-run,
`labcoat status` says which node ran what, no container is left, and the API key of the machine
that runs labcoat reaches neither a node's processes nor a container. Before that, `labcoat
doctor --cluster` lists both nodes and `labcoat sandbox cleanup --cluster` sweeps both."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from labcoat.log import EventBase, load_state, read_events
from labcoat.log.work_events import SandboxLeased
from tests.cluster import shared
from tests.cluster.local import LocalCluster, Node
from tests.loop.conftest import LABCOAT, make_experiment
from tests.loop.test_resume import containers_of

pytestmark = [pytest.mark.docker, pytest.mark.ray]

CANARY = "sk-ant-canary-4f1d0c2e9b7a"
SLOW_TRAIN = '''
import json, pathlib, time
p = pathlib.Path("params.json")
x = float(json.loads(p.read_text()).get("x", 0.1)) if p.exists() else 0.1
time.sleep(4)
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/x.txt").write_text(repr(x))
'''


def _start(cluster: LocalCluster, exp: Path, runs: Path, out: Path) -> subprocess.Popen[bytes]:
    env = cluster.env({"ANTHROPIC_API_KEY": CANARY, "OPENAI_API_KEY": CANARY})
    with open(out, "wb") as fh:
        return subprocess.Popen(
            [LABCOAT, "run", str(exp), "--model", "search", "--cluster", "auto",
             "--parallel", "2", "--max-iterations", "2", "--runs-dir", str(runs)],
            stdout=fh, stderr=subprocess.STDOUT, env=env)


def _run_dir(runs: Path, timeout_s: float = 60) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p for p in runs.glob("[!.]*") if (p / "log.jsonl").exists()]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("no run directory")


def _name_of(docker_client: Any, run_id: str, cluster: LocalCluster, node: Node) -> str | None:
    """The node's name as labcoat gives it, from a container of the run its processes made."""
    pids = {str(p) for p in cluster.node_pids(node)}
    listed = docker_client.api.containers(all=True, filters={"label": f"labcoat.run_id={run_id}"})
    for box in listed:
        labels = box.get("Labels") or {}  # a listing, no inspect: a container may go meanwhile
        if labels.get("labcoat.pid") in pids:
            return str(labels["labcoat.node"])
    return None


def _busy_on(run_dir: Path, name: str) -> tuple[str, set[str]] | None:
    """A `-run` sandbox (the experiment's 4 s command) leased on node `name` whose subtask is not
    graded yet, and every node leased so far."""
    events = read_events(run_dir)
    graded = {getattr(e, "subtask_id", "") for e in events if e.type == "graded"}
    leased = [e for e in events if isinstance(e, SandboxLeased) and e.node]
    running = [e.sandbox for e in leased if e.node == name and e.sandbox.endswith("-run")
               and e.subtask_id not in graded]
    return (running[-1], {e.node for e in leased if e.node}) if running else None


def _wait_until_busy(docker_client: Any, run_dir: Path, cluster: LocalCluster, node: Node,
                     ) -> tuple[str, str]:
    """(the node's name, the sandbox it runs) once both nodes have been used."""
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        name = _name_of(docker_client, run_dir.name, cluster, node)
        busy = _busy_on(run_dir, name) if name else None
        if name and busy and len(busy[1]) >= 2:
            return name, busy[0]
        time.sleep(0.1)
    raise AssertionError(f"no sandbox of the run was busy on {node.name} while both nodes "
                         "were in use")


def _no_canary_anywhere(cluster: LocalCluster, containers: list[Any]) -> None:
    for node in cluster.nodes:
        for pid in cluster.node_pids(node):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            assert CANARY.encode() not in environ, f"the key reached process {pid} on {node.name}"
    from docker.errors import NotFound

    for box in containers:
        try:
            box.reload()
        except NotFound:  # closed since it was listed
            continue
        assert not any(CANARY in v for v in box.attrs["Config"]["Env"] or ())


def _only_loopback() -> None:
    """Every TCP connection of the namespace the test lives in is on 127.0.0.1."""
    lines = subprocess.run(["ss", "-tnH"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    peers = [part for line in lines for part in line.split()[3:5]]
    loopback = ("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:")
    assert peers and all(p.startswith(loopback) for p in peers), peers


def _wait_for(run_dir: Path, kind: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(e.type == kind for e in read_events(run_dir)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} within {timeout_s} s")


def _after(events: list[EventBase], seq: int, sandbox: str) -> list[Any]:
    return [e for e in events if e.type == "sandbox_leased" and e.seq > seq
            and getattr(e, "sandbox", "") == sandbox]


def test_doctor_lists_each_node_and_cleanup_sweeps_every_node() -> None:
    cluster = shared.enter()
    env = cluster.env()
    doctor = subprocess.run([LABCOAT, "doctor", "--cluster", "auto"], capture_output=True,
                            text=True, env=env, timeout=180)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    nodes = [line for line in doctor.stdout.splitlines() if line.startswith("[ok  ] node ")]
    assert len(nodes) == 2 and all("image" in n and "sandboxes" in n for n in nodes), \
        doctor.stdout
    cleanup = subprocess.run([LABCOAT, "sandbox", "cleanup", "--cluster", "auto"],
                             capture_output=True, text=True, env=env, timeout=180)
    assert cleanup.returncode == 0 and "on 2 node(s)" in cleanup.stdout, cleanup.stderr
    bad = subprocess.run([LABCOAT, "doctor", "--cluster", "no-such-address"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "fix:" in bad.stderr


def test_a_run_spreads_over_two_nodes_and_survives_losing_one(tmp_path: Path,
                                                               docker_client: Any) -> None:
    cluster = shared.enter()
    n2 = shared.second(cluster)
    exp = make_experiment(tmp_path / "toy", roles=["engineer"])
    (exp / "workspace" / "train.py").write_text(textwrap.dedent(SLOW_TRAIN))
    proc = _start(cluster, exp, tmp_path / "runs", tmp_path / "out.txt")
    try:
        run_dir = _run_dir(tmp_path / "runs")
        run_id = run_dir.name
        lost_node, victim = _wait_until_busy(docker_client, run_dir, cluster, n2)
        _only_loopback()
        _no_canary_anywhere(cluster, containers_of(docker_client, run_id))
        cluster.kill(n2)
        _wait_for(run_dir, "node_lost")
        proc.kill()  # labcoat itself dies too (SIGKILL): its actors and containers stay behind
        proc.wait()
        resumed = subprocess.run([LABCOAT, "resume", str(run_dir), "--cluster", "auto"],
                                 capture_output=True, text=True, timeout=300,
                                 env=cluster.env({"ANTHROPIC_API_KEY": CANARY}))
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = read_events(run_dir)
    lost = [e for e in events if e.type == "node_lost"]
    assert [e.node for e in lost] == [lost_node], lost  # once, the node that was killed
    state = load_state(run_dir)
    assert state.status == "finished"
    assert all(s.status == "finished" for s in state.subtasks.values()), \
        {s.id: (s.status, s.error) for s in state.subtasks.values()}
    again = _after(events, lost[0].seq, victim)  # what the node took along ran again elsewhere
    assert again and all(e.node != lost_node for e in again), victim
    assert sum(e.type == "graded" and getattr(e, "subtask_id", "") == victim.removesuffix("-run")
               and getattr(e, "seed", None) == 0 for e in events) == 1  # once, elsewhere
    assert containers_of(docker_client, run_id) == []
    status = subprocess.run([LABCOAT, "status", str(run_dir)], capture_output=True, text=True,
                            env={**os.environ}, check=True).stdout
    ran = {e.node for e in events if isinstance(e, SandboxLeased) and e.node}
    assert " node" in status.splitlines()[-len(state.subtasks) - 1] and \
        any(name in status for name in ran), status
