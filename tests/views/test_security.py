"""The viewer's file route serves only files inside the run directory, whatever the request
says; responses carry a CSP; the server answers only the names it was bound to; and any host
but loopback gets a warning. Requests are written byte for byte on a socket, so no client
normalises the path first."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.views.conftest import start_viewer
from tests.views.synth import journal_run


def raw_get(url: str, path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as given (no normalisation); status, headers, body."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A run with a secret file beside it and symlinks inside it leading in and out."""
    tmp_path = tmp_path_factory.mktemp("served")
    runs = tmp_path / "runs"
    run_dir = journal_run(runs / "run-a", 1)
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    art = run_dir / "artifacts" / "it001-01"
    art.mkdir(parents=True)
    (art / "run.log").write_text("epoch 1\n")
    (art / "page.html").write_text("<script>window.__pwned = 1</script>")
    os.symlink(tmp_path / "secret.txt", art / "out.log")
    os.symlink("../../../secret.txt", art / "relative-out.log")
    os.symlink(tmp_path, art / "dir-out")
    os.symlink("run.log", art / "in.log")
    server = start_viewer(runs)
    yield server.url, run_dir, tmp_path
    server.stop()


ESCAPES = [
    "../../secret.txt", "..%2F..%2Fsecret.txt", "%2e%2e/%2e%2e/secret.txt",
    "%2E%2E%2F%2E%2E%2Fsecret.txt", "artifacts/..%2F..%2F..%2Fsecret.txt",
    "%252e%252e/%252e%252e/secret.txt", "..%5C..%5Csecret.txt", "artifacts/it001-01/out.log",
    "artifacts/it001-01/relative-out.log", "artifacts/it001-01/dir-out/secret.txt",
    "/etc/passwd", "%2Fetc%2Fpasswd", "//etc/passwd", "artifacts/it001-01/run.log%00.txt",
    "artifacts", "", "nope.log",
]


@pytest.mark.parametrize("rel", ESCAPES)
def test_nothing_outside_the_run_is_served(served: tuple[str, Path, Path], rel: str) -> None:
    url, _, _ = served
    status, _, body = raw_get(url, f"/runs/run-a/files/{rel}")
    assert status == 404, (rel, body[:200])
    assert b"SECRET" not in body and b"root:" not in body


def test_files_inside_the_run_are_plain_text(served: tuple[str, Path, Path]) -> None:
    url, _, _ = served
    for rel, text in [("artifacts/it001-01/run.log", b"epoch 1\n"),
                      ("artifacts/it001-01/in.log", b"epoch 1\n"),
                      ("artifacts/it001-01/page.html", b"<script>window.__pwned = 1</script>")]:
        status, headers, body = raw_get(url, f"/runs/run-a/files/{rel}")
        assert status == 200 and body == text, rel
        assert headers["content-type"].startswith("text/plain"), rel
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in headers["content-security-policy"]


def test_every_page_has_a_csp_without_inline_script(served: tuple[str, Path, Path]) -> None:
    url, _, _ = served
    for path in ["/", "/runs/run-a/", "/runs/run-a/subtasks/it001-01", "/api/runs/run-a",
                 "/runs/nope/"]:
        _, headers, body = raw_get(url, path)
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert b"<script>" not in body  # the pages' only script is the file /static/viewer.js


def test_only_the_bound_names_are_answered(served: tuple[str, Path, Path]) -> None:
    url, _, _ = served
    assert raw_get(url, "/", host="localhost")[0] == 200
    status, _, _ = raw_get(url, "/", host="attacker.example")  # DNS rebinding
    assert status == 400


@pytest.mark.slow
def test_another_host_gets_a_warning(tmp_path: Path, viewer: Any) -> None:
    journal_run(tmp_path / "runs" / "run-a", 1)
    v = viewer(tmp_path / "runs", "--host", "0.0.0.0")
    v.stop()
    assert "warning: serving on 0.0.0.0: anyone who can reach this address can read" in v.stderr
    quiet = viewer(tmp_path / "runs")
    quiet.stop()
    assert "warning" not in quiet.stderr
