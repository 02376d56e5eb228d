"""An LLM engineer whose commands leave daemons behind: a `setsid` loop that keeps swapping a file
for a symlink in /workspace, and a double-forked `sleep` with an empty environment. Collecting its
work must neither crash the run nor take a half-changed tree: everything it started is killed
first. Real SDK against a fake server on 127.0.0.1, real containers, real git."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import git
import pytest

from labcoat.log import load_state
from tests.llm.brain import ENGINEER_NEW, Team, Turn
from tests.loop.conftest import labcoat, make_experiment, run_dir_of
from tests.models.servers import FakeOpenAI

CHURN = ("import os\nos.chdir('/workspace'); os.makedirs('churn', exist_ok=True)\n"
         "dirs = ['churn/%d' % i for i in range(60)]\nwhile True:\n"
         " for d in dirs:\n  os.mkdir(d)\n"
         "  for f in range(30): open('%s/%d' % (d, f), 'w').close()\n"
         " for d in dirs:\n  for f in range(30): os.unlink('%s/%d' % (d, f))\n  os.rmdir(d)\n")
"""Folders of files made and removed as fast as python can: a copy of /workspace taken while it
runs meets entries that vanish between listing and reading."""
DAEMONS = ("(setsid env -i sleep 2000 &); "
           f"(setsid python3 -c {shlex.quote(CHURN)} >/dev/null 2>&1 </dev/null &); "
           "sleep 0.5; ps -eo args | grep -cx 'sleep 2000'")


class DaemonTeam(Team):
    """The engineer edits train.py, then starts the daemons, then submits."""

    def engineer(self, t: Turn) -> tuple[str, Any]:
        if t.turn == 2:
            return "bash", {"command": DAEMONS}
        return super().engineer(t if t.turn < 2 else Turn(t.role, t.turn - 1, t.task,
                                                          t.last_tool, t.body))


@pytest.mark.docker
def test_work_is_collected_although_daemons_churn_the_workspace(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", roles=["engineer"],  # a whole core: the churn
                          resources={"cpus": 1.0, "memory": "256m", "timeout_s": 60})  # never waits
    team = DaemonTeam()
    with FakeOpenAI([team] * 40) as srv:
        proc = labcoat("run", str(exp), "--runs-dir", str(tmp_path / "runs"), "--parallel", "1",
                       "--model", "openai:any", "--base-url", srv.base_url,
                       "--max-iterations", "1")
    assert proc.returncode == 0, proc.stderr
    engineer = team.of("engineer")
    assert engineer[-1].last_tool.strip().endswith("stdout:\n1")  # the daemon was running
    state = load_state(run_dir_of(proc))
    done = [s for s in state.subtasks.values() if s.role == "engineer"]
    assert done and done[0].status == "finished", done
    with git.Repo(run_dir_of(proc) / "workspace") as repo:
        tree = repo.commit(done[0].commit).tree
        assert ENGINEER_NEW in tree["train.py"].data_stream.read().decode()
