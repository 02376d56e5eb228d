"""report.md and its plot, from a real log written with the journal (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

from labcoat.log import Journal
from labcoat.views.report import write_report
from labcoat.workspace import Workspace


def write_run(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("x = 1\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ws, base = Workspace.create(src, run_dir / "workspace")
    work = tmp_path / "work"
    ws.export(base, work)
    (work / "params.json").write_text('{"x": 2}\n')
    best = ws.commit(ws.write_tree(work), parent=base, message="it001-02 engineer: score=0.9")
    with Journal.open(run_dir, "r1", create=True) as j:
        j.append("run_started", iteration=0, config={"goal": "Make score big."},
                 experiment={"name": "toy", "metric": {"name": "score",
                                                       "direction": "maximize"}},
                 experiment_dir=str(tmp_path), experiment_hash="e", grader_hash="g",
                 labcoat_version="0", seed=0, brain="search", base_commit=base)
        subs = [{"id": f"it001-0{i}", "iteration": 1, "role": role, "instructions": "go",
                 "base_commit": base, "seed": 0} for i, role in
                [(1, "reproducer"), (2, "engineer"), (3, "engineer")]]
        j.append("plan_proposed", iteration=1, subtasks=subs, rationale="r")
        for sid, commit, metric in [("it001-01", base, 0.5), ("it001-02", best, 0.9),
                                    ("it001-03", best, 0.95)]:
            j.append("subtask_finished", iteration=1, subtask_id=sid, role="engineer",
                     tree="t", summary=f"did {sid}")
            j.append("graded", iteration=1, subtask_id=sid, commit=commit, seed=0,
                     metrics={"score": metric}, metric=metric)
        j.append("critique", iteration=1, subtask_id="it001-r01", target="it001-03",
                 verdict="not_reproducible", reason="lucky seed")
    return run_dir


def test_report_has_goal_baseline_best_diff_table_lineage_and_plot(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    text = write_report(run_dir).read_text()
    assert "Make score big." in text
    assert "baseline: **0.5**" in text
    assert "best: **0.9** from `it001-02`" in text  # the refuted 0.95 never counts
    assert "| it001-03 | 1 | engineer | finished | 0.95 | not_reproducible |" in text
    assert "## Lineage" in text and "+{\"x\": 2}" in text
    assert "![score over iterations](metric.png)" in text
    png = (run_dir / "metric.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
