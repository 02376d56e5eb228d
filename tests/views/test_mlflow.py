"""`labcoat export RUN_DIR --mlflow` into a temporary MLflow store, read back with MLflow's own
client (in a child process: MLflow's import-time warnings are not this suite's to fail on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.loop.conftest import labcoat

pytestmark = pytest.mark.docker

READ_BACK = r'''
import json, os, sys
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
exp = client.get_experiment_by_name("labcoat: toy")
runs = client.search_runs([exp.experiment_id])
out = {}
for r in runs:
    rid = r.info.run_id
    out[r.info.run_name] = {
        "params": r.data.params, "tags": {k: v for k, v in r.data.tags.items()},
        "metrics": {k: sorted((m.step, m.value) for m in client.get_metric_history(rid, k))
                    for k in r.data.metrics},
        "status": r.info.status,
        "artifacts": sorted(a.path for a in client.list_artifacts(rid))
                     + sorted(a.path for a in client.list_artifacts(rid, "logs")),
        "id": rid}
print(json.dumps(out))
'''


def read_back(uri: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", READ_BACK, uri], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_export_to_mlflow_and_again(llm_run: Path, tmp_path: Path) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    first = labcoat("export", str(llm_run), "--mlflow", "--tracking-uri", uri, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "2 graded subtask runs" in first.stdout and uri in first.stdout
    runs = read_back(uri)
    assert set(runs) == {llm_run.name, "it001-01", "it001-02"}
    parent, engineer = runs[llm_run.name], runs["it001-02"]
    assert parent["params"]["brain"] == "openai:any" and parent["status"] == "FINISHED"
    assert parent["metrics"]["best"][-1][1] == pytest.approx(engineer["metrics"]["score"][0][1])
    assert engineer["tags"]["mlflow.parentRunId"] == parent["id"]
    assert engineer["tags"]["labcoat.role"] == "engineer"
    assert engineer["tags"]["labcoat.verdict"] == "reproducible"
    assert len(engineer["tags"]["labcoat.commit"]) == 40
    assert len(engineer["tags"]["labcoat.base"]) == 40
    assert engineer["params"]["seed"] == "0" and engineer["params"]["role"] == "engineer"
    assert [step for step, _ in engineer["metrics"]["score"]] == [0, 1, 2]  # one per seed
    assert engineer["artifacts"] == ["diff.patch", "logs", "logs/evaluate.log",
                                     "logs/metrics-seed0.json", "logs/metrics-seed1.json",
                                     "logs/metrics-seed2.json", "logs/run.log"]
    again = labcoat("export", str(llm_run), "--mlflow", "--tracking-uri", uri, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_back(uri) == runs  # updated in place: no run, metric or artifact twice


def test_the_default_store_is_mlruns_in_the_working_directory(llm_run: Path,
                                                               tmp_path: Path) -> None:
    proc = labcoat("export", str(llm_run), "--mlflow", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mlruns").is_dir()
    assert set(read_back((tmp_path / "mlruns").as_uri())) >= {"it001-01", "it001-02"}
