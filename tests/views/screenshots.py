"""The README's pictures of `labcoat view`, made from a real run (`make screenshots`).

    .venv/bin/python -m tests.views.screenshots docs/

Runs the bundled digits experiment with the LLM brain against the scripted OpenAI-compatible
server the tests use (real SDK, real Docker sandboxes, real grading: the engineer swaps the
logistic regression for an SVM), serves it with `labcoat view`, and has headless Chromium
photograph the run page and the engineer's subtask page with its transcript.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.llm.brain import Team
from tests.llm.test_llm_run import BUNDLED, DIGITS_NEW, DIGITS_OLD
from tests.loop.conftest import labcoat, run_dir_of
from tests.models.servers import FakeOpenAI
from tests.views.conftest import CHROMIUM, CHROMIUM_ARGS, start_viewer


def make_run(root: Path) -> Path:
    team = Team(edit=(DIGITS_OLD, DIGITS_NEW, "logistic regression -> an RBF SVM (C=10)"),
                usage=(1800, 240))
    with FakeOpenAI([team] * 100) as srv:
        proc = labcoat("run", str(BUNDLED), "--model", "openai:gpt-4.1-mini", "--base-url",
                       srv.base_url, "--max-iterations", "2", "--parallel", "1",
                       "--runs-dir", str(root / "runs"), env={"OPENAI_API_KEY": "sk-local"})
    if proc.returncode != 0:
        raise SystemExit(f"the run failed:\n{proc.stderr}")
    return run_dir_of(proc)


def photograph(run_dir: Path, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    server = start_viewer(run_dir)
    shots = [(f"runs/{run_dir.name}/", out / "view-run.png"),
             (f"runs/{run_dir.name}/subtasks/it001-02#transcript", out / "view-subtask.png")]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            for path, file in shots:
                page.goto(server.url + path)
                page.wait_for_timeout(500)
                page.screenshot(path=str(file), full_page=False)
            browser.close()
    finally:
        server.stop()
    return [file for _, file in shots]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for file in photograph(make_run(Path(tmp)), out):
            print(file)


if __name__ == "__main__":
    main()
