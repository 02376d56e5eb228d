"""The web viewer at scale: page times on a 100k-event run, a live update in a real browser,
and the server's memory with a 100 MB transcript (JSON out).

    .venv/bin/python benchmarks/view_scale.py [--iterations 490] [--repeats 15]

A generated run (tests/views/synth.py: the log's real line format, ~100k events, ~1,500
subtasks with 30 model/tool call pairs each) is served by a real `labcoat view` process:

  cold      the first run page while the server has read nothing, and how long until every
            event is read (pages show a big log as it is read: "reading the log ..."), against
            `labcoat status` on the same log (the same verified reader, to the end)
  warm      medians of the run page's HTML and JSON, and of a subtask page, against a static
            file from the same server (the floor: HTTP and uvicorn alone)
  live      Chromium (Debian's, through Playwright) open on the run page; events appended with
            the real Journal; seconds until the page shows them, without a reload
  memory    a second run whose one subtask has a 100 MB transcript: the server's peak RSS
            after its first, middle and last transcript pages, and the size of each page

Goals (the issue): run page <= 1 s, subtask page <= 300 ms, live update <= 1 s, memory
bounded (far below the transcript's size). Wall times depend on what else the machine runs
(`load_avg_1m` is recorded); `server_cpu_ms` is what a request cost the server itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labcoat.log import Journal  # noqa: E402
from tests.views.conftest import CHROMIUM, CHROMIUM_ARGS, start_viewer, wait_until  # noqa: E402
from tests.views.synth import NoSync, append, fast_run, subtask  # noqa: E402

LABCOAT = str(Path(sys.executable).with_name("labcoat"))


def fetch(url: str) -> tuple[float, bytes]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - began, body


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: what a request costs, whatever else
    the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_ms(url: str, repeats: int, pid: int) -> dict[str, float]:
    cpu = cpu_s(pid)
    times = sorted(fetch(url)[0] for _ in range(repeats))
    return {"median_ms": round(statistics.median(times) * 1000, 1),
            "p90_ms": round(times[int(len(times) * 0.9) - 1] * 1000, 1),
            "server_cpu_ms": round((cpu_s(pid) - cpu) / repeats * 1000, 1),
            "bytes": len(fetch(url)[1])}


def cold(base: str, run_dir: Path) -> dict[str, Any]:
    first, _ = fetch(f"{base}runs/{run_dir.name}/")
    began = time.perf_counter()
    while json.loads(fetch(f"{base}api/runs/{run_dir.name}")[1])["reading"]:
        time.sleep(0.1)
    complete = first + time.perf_counter() - began
    began = time.perf_counter()
    subprocess.run([LABCOAT, "status", str(run_dir)], capture_output=True, check=True)
    status = time.perf_counter() - began
    return {"first_run_page_s": round(first, 3), "all_events_read_s": round(complete, 2),
            "labcoat_status_s": round(status, 2),
            "ratio_all_read_to_status": round(complete / status, 2)}


def warm(base: str, name: str, sid: str, repeats: int, pid: int) -> dict[str, Any]:
    floor = median_ms(f"{base}static/viewer.css", repeats, pid)
    run_html = median_ms(f"{base}runs/{name}/", repeats, pid)
    run_json = median_ms(f"{base}api/runs/{name}", repeats, pid)
    sub = median_ms(f"{base}runs/{name}/subtasks/{sid}", repeats, pid)
    return {"static_file": floor, "run_page_html": run_html, "run_page_json": run_json,
            "subtask_page_html": sub,
            "ratio_run_page_to_static": round(run_html["median_ms"] / floor["median_ms"], 1),
            "ratio_subtask_page_to_static": round(sub["median_ms"] / floor["median_ms"], 1)}


def live(base: str, run_dir: Path, rounds: int = 5) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    journal = Journal.open(run_dir, ops=NoSync())
    took = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{base}runs/{run_dir.name}/")
            page.wait_for_timeout(1000)  # the event stream is open
            for k in range(rounds):
                shown = int(page.locator("#event-count").inner_text())
                added = list(subtask(1, f"it001-0{k + 1}", "0" * 40, "b" * 40, 0.5, calls=1))
                append(journal, added)
                took.append(wait_until(page, "document.querySelector('#event-count')"
                                             f".textContent == '{shown + len(added)}'", 30))
            browser.close()
    finally:
        journal.close()
    return {"rounds": rounds, "median_s": round(statistics.median(took), 3),
            "max_s": round(max(took), 3)}


def rss_mib(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {ln.split(":")[0]: ln.split()[1] for ln in status if ln.startswith("Vm")}
    return {"rss_mib": round(int(fields["VmRSS"]) / 1024, 1),
            "peak_rss_mib": round(int(fields["VmHWM"]) / 1024, 1)}


def memory(root: Path, calls: int) -> dict[str, Any]:
    run_dir = fast_run(root / "huge" / "huge-run", 1, width=1, calls=calls, text="x" * 50_000)
    size = (run_dir / "log.jsonl").stat().st_size
    server = start_viewer(root / "huge")
    try:
        base, pid = server.url, server.proc.pid
        while json.loads(fetch(f"{base}api/runs/huge-run")[1])["reading"]:
            time.sleep(0.1)
        after_index = rss_mib(pid)
        pages = {}
        for t in (0, calls, 2 * calls - 1):  # first, middle and last page of 2 x calls entries
            took, body = fetch(f"{base}runs/huge-run/subtasks/it001-01?t={t}")
            pages[f"t={t}"] = {"seconds": round(took, 3), "html_mib": round(len(body) / 2**20, 2)}
        return {"log_mib": round(size / 2**20, 1), "transcript_entries": 2 * calls,
                "after_index": after_index, "pages": pages, "after_pages": rss_mib(pid)}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=490, help="~205 events each")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--huge-calls", type=int, default=2000, help="50 KB replies each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_dir = fast_run(root / "runs" / "big-run", args.iterations, calls=30, finish=False)
        events = (run_dir / "log.jsonl").read_bytes().count(b"\n")
        server = start_viewer(root / "runs")
        try:
            result: dict[str, Any] = {
                "python": sys.version.split()[0], "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 1), "events": events,
                "log_mib": round((run_dir / "log.jsonl").stat().st_size / 2**20, 1),
                "cold": cold(server.url, run_dir)}
            middle = f"it{max(args.iterations // 2, 1):03d}-02"
            result["warm"] = warm(server.url, run_dir.name, middle, args.repeats,
                                  server.proc.pid)
            cpu = cpu_s(server.proc.pid)
            result["live_update"] = live(server.url, run_dir)
            result["live_update"]["server_cpu_ms_per_update"] = round(
                (cpu_s(server.proc.pid) - cpu) / result["live_update"]["rounds"] * 1000, 1)
            result["server_rss_big_run"] = rss_mib(server.proc.pid)
        finally:
            server.stop()
        result["memory_huge_transcript"] = memory(root, args.huge_calls)
    result["goals"] = goals(result)
    print(json.dumps(result, indent=2))


def goals(r: dict[str, Any]) -> dict[str, Any]:
    w, m = r["warm"], r["memory_huge_transcript"]
    return {
        "run_page_html <= 1 s": w["run_page_html"]["median_ms"] <= 1000,
        "subtask_page <= 300 ms": w["subtask_page_html"]["median_ms"] <= 300,
        "live_update <= 1 s": r["live_update"]["max_s"] <= 1.0,
        "memory bounded (peak RSS < the transcript's size)":
            m["after_pages"]["peak_rss_mib"] < m["log_mib"],
    }


if __name__ == "__main__":
    main()
