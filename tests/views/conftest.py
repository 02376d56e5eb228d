"""The viewer's fixtures: a real `labcoat view` server process, headless Chromium (Debian's)
driven by Playwright, and runs: synthetic ones written through the real Journal, and a real
LLM-brain run (Docker sandboxes, the OpenAI SDK against a local scripted server) whose agents
print markup, `javascript:` links and terminal escapes."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.llm.brain import ENGINEER_NEW, ENGINEER_OLD, Team, Turn
from tests.loop.conftest import LABCOAT, labcoat, make_experiment, run_dir_of
from tests.models.servers import FakeOpenAI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]

SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
LINK = '<a href="javascript:window.__pwned = 3">click me</a>'
ESC = "\x1b[31mRED\x1b[0m"
PRINTED = "<script>window.__pwned = 4</script>"


@dataclass
class Viewer:
    """A `labcoat view` process; `url` is where it serves."""

    proc: subprocess.Popen[str]
    url: str
    stderr: str = ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr and not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


def start_viewer(target: Path, *more: str, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> Viewer:
    """Start `labcoat view TARGET --port 0 ...` and wait for the URL it prints."""
    proc = subprocess.Popen([LABCOAT, "view", str(target), "--port", "0", *more], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline() if proc.stdout else ""),
                     daemon=True).start()
    try:
        first = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        raise AssertionError("labcoat view printed no URL within 60 s") from None
    url = next((w for w in first.split() if w.startswith("http://")), "")
    assert url, f"no URL in {first!r}: {proc.stderr.read() if proc.stderr else ''}"
    return Viewer(proc, url)


@pytest.fixture
def viewer() -> Iterator[Any]:
    """`viewer(target, *options)` starts a server; each is stopped (by its PID) afterwards."""
    started: list[Viewer] = []

    def start(target: Path, *more: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> Viewer:
        started.append(start_viewer(target, *more, cwd=cwd, env=env))
        return started[-1]

    yield start
    for v in started:
        v.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module: Playwright's sync API keeps an event loop running
    in this thread while it is open, which `asyncio.run` in later tests must not meet."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"needs Debian's chromium at {CHROMIUM}: `make setup` installs it",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page; `page.dialogs` records every dialog (alert, confirm) it opened."""
    yield from _page(browser, bypass_csp=False)


@pytest.fixture
def page_without_csp(browser: Any) -> Iterator[Any]:
    """A page that ignores the viewer's Content-Security-Policy: what escaping alone does."""
    yield from _page(browser, bypass_csp=True)


def _page(browser: Any, *, bypass_csp: bool) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  bypass_csp=bypass_csp)
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    yield tab
    context.close()


def wait_until(page: Any, expression: str, timeout_s: float = 5.0) -> float:
    """Poll `expression` in the page until it is truthy; returns the seconds it took. (The
    pages' CSP forbids the eval that Playwright's wait_for_function needs.)"""
    began = time.monotonic()
    while not page.evaluate(expression):
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        time.sleep(0.02)
    return time.monotonic() - began


class HostileTeam(Team):
    """The scripted team, but every text its agents write is an attack on the viewer."""

    def manager(self, t: Turn) -> tuple[str, Any]:
        return "propose_plan", {"rationale": f"plan {SCRIPT} {LINK} {ESC}", "subtasks": [
            {"role": "engineer", "base": "best",
             "instructions": f"Read train.py {IMG} and set the default x to 0.7."}]}

    def engineer(self, t: Turn) -> tuple[str, Any]:
        if t.turn == 0:
            return "bash", {"command": f"printf '%s\\n' '{SCRIPT}' '{IMG}' && "
                                       "printf '\\033[31mRED\\033[0m\\n'"}
        if t.turn == 1:
            return "read_file", {"path": "train.py"}
        if t.turn == 2 and ENGINEER_OLD in t.last_tool:
            new = (f'{ENGINEER_NEW})  # {SCRIPT} {IMG}\n'
                   f'print("\\x1b[31mRED\\x1b[0m {PRINTED}"')
            return "edit_file", {"path": "train.py", "old": ENGINEER_OLD + ")", "new": new + ")"}
        return "submit", {"summary": f"set x to 0.7 {LINK} {ESC}"}


@pytest.fixture(scope="session")
def llm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished LLM-brain run (1 iteration: reproducer, engineer, critic) with hostile text
    everywhere an agent could put some."""
    root = tmp_path_factory.mktemp("llm-view")
    exp = make_experiment(root / "toy", roles=["reproducer", "engineer", "critic"])
    with FakeOpenAI([HostileTeam()] * 100) as srv:
        proc = labcoat("run", str(exp), "--runs-dir", str(root / "runs"), "--parallel", "1",
                       "--model", "openai:any", "--base-url", srv.base_url,
                       "--max-iterations", "1",
                       env={"OPENAI_API_KEY": "sk-test-view-0123456789"})
    assert proc.returncode == 0, proc.stderr
    return run_dir_of(proc)
