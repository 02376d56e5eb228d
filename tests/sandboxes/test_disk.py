"""Disk limits (`SandboxSpec.disk_mb`, `resources.disk`): a sandbox cannot fill the host's disk,
the command that reaches the limit is stopped, and the space goes back with the sandbox. Also the
scratch folders' privacy and the clean-up that trusts no label."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labcoat.errors import ConfigError, DiskLow, UnsafeOutputError
from labcoat.orchestrator.doctor import check_disk_limits
from labcoat.orchestrator.sandboxing import FLOOR_ENV, check_disk_floor, disk_floor
from labcoat.sandboxes import DockerProvider
from labcoat.sandboxes import _container as ctr
from labcoat.sandboxes.base import LABEL_HOST, LABEL_PID, LABEL_RUN
from labcoat.sandboxes.cleanup import labelled, sweep_orphans, sweep_scratch
from labcoat.sandboxes.disk import (
    IMAGE_SUFFIX,
    DiskGuard,
    copy_sparse,
    hard_limits,
    make_image,
    mounts_under,
    unmount,
)

from .conftest import new_run_id

HARD = hard_limits() is None
needs_hard = pytest.mark.skipif(not HARD, reason=f"no hard disk limits here: {hard_limits()}")
LIMIT_MB = 64
IGNORE_ENOSPC = """python3 -c '
import os
while True:
    try:
        with open("/workspace/f%d" % os.urandom(1)[0], "ab") as fh:
            fh.write(b"x" * 1000000)
    except OSError:
        pass
'"""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def provider(run: Any, docker_client: Any, scratch: Path) -> Iterator[DockerProvider]:
    prov = DockerProvider(new_run_id("disk"), scratch_root=scratch)
    run(prov.start())
    yield prov
    run(prov.aclose())
    for point in mounts_under(scratch):  # a failed test's image: never left to pytest's rm
        unmount(point)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


@needs_hard
def test_fallocate_20g_is_refused_and_the_space_goes_back(run: Any, provider: DockerProvider,
                                                          make_spec: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id, disk_mb=LIMIT_MB)))
    image = box.scratch.with_name(box.scratch.name + IMAGE_SUFFIX)
    try:
        assert os.path.ismount(box.scratch)
        res = run(box.exec("fallocate -l 20G /workspace/big.bin", timeout_s=60))
        assert res.disk_full and not res.ok
        assert "disk limit exceeded" in res.describe("fallocate")
        assert allocated(image) < 2 * LIMIT_MB << 20  # the host gave at most the limit
        later = run(box.exec("echo still here"))
        assert later.disk_full and "still here" not in later.stdout  # nothing more runs
        with pytest.raises(UnsafeOutputError, match="disk limit exceeded"):
            run(box.get_dir("/workspace", provider.scratch_root / "copy"))
    finally:
        run(box.aclose())
    assert not os.path.ismount(box.scratch) and not image.exists() and not box.scratch.exists()


@needs_hard
def test_a_writer_that_ignores_enospc_is_stopped(run: Any, provider: DockerProvider,
                                                 make_spec: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id, disk_mb=LIMIT_MB)))
    try:
        res = run(box.exec(IGNORE_ENOSPC, timeout_s=120))
    finally:
        run(box.aclose())
    assert res.disk_full and not res.timed_out  # stopped at the limit, not at the deadline
    assert "disk limit exceeded" in res.stderr


def test_workspace_and_outputs_share_one_limit(run: Any, provider: DockerProvider,
                                               make_spec: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id, disk_mb=LIMIT_MB)))
    try:
        res = run(box.exec("head -c 40M /dev/zero > /workspace/a && "
                           "head -c 40M /dev/zero > /outputs/b", timeout_s=60))
    finally:
        run(box.aclose())
    assert res.disk_full


def test_writing_under_the_limit_is_untouched(run: Any, provider: DockerProvider,
                                              make_spec: Any, tmp_path: Path) -> None:
    box = run(provider.create(make_spec(provider.run_id, disk_mb=LIMIT_MB)))
    try:
        res = run(box.exec(f"head -c {LIMIT_MB - 8}M /dev/zero > /workspace/a && rm /workspace/a"
                           " && head -c 1M /dev/zero > /workspace/b", timeout_s=60))
        run(box.get_dir("/workspace", tmp_path / "out"))
    finally:
        run(box.aclose())
    assert res.ok and not res.disk_full, res.stderr
    assert (tmp_path / "out" / "b").stat().st_size == 1 << 20


def test_the_watchdog_stops_a_writer_where_no_image_is_mounted(
        run: Any, provider: DockerProvider, make_spec: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCOAT_DISK_LIMITS", "watchdog")
    box = run(provider.create(make_spec(provider.run_id, disk_mb=LIMIT_MB)))
    try:
        assert not os.path.ismount(box.scratch)
        res = run(box.exec("for i in $(seq 1 60); do head -c 4M /dev/zero > /workspace/f$i; "
                           "sleep 0.1; done", timeout_s=120))
        written = len(os.listdir(box.scratch / "workspace"))
    finally:
        run(box.aclose())
    assert res.disk_full and not res.timed_out
    assert written < 60  # stopped on the way, not after 240 MB
    assert "watchdog" in res.stderr


def test_no_limit_means_a_plain_folder(run: Any, provider: DockerProvider,
                                       make_spec: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id, disk_mb=None)))
    try:
        assert box.disk is None and not os.path.ismount(box.scratch)
        assert run(box.exec("echo ok > /workspace/x")).ok
    finally:
        run(box.aclose())


def test_scratch_folders_are_private(run: Any, provider: DockerProvider, make_spec: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id)))
    try:
        mode = stat.S_IMODE(box.scratch.parent.stat().st_mode)
        assert mode == 0o700, oct(mode)
        assert stat.S_IMODE(box.scratch.stat().st_mode) == 0o700
    finally:
        run(box.aclose())


# ---- clean-up trusts no label -------------------------------------------------------------


def _orphan(client: Any, image: str, run_id: str, scratch_label: str) -> str:
    """A stopped container labelled like an orphan of this host whose process is gone."""
    dead = _dead_pid()
    labels = {LABEL_RUN: run_id, LABEL_PID: str(dead), LABEL_HOST: socket.gethostname(),
              ctr.LABEL_SCRATCH: scratch_label}
    return str(client.api.create_container(image, command=["true"], labels=labels)["Id"])


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_the_sweep_deletes_only_inside_the_scratch_root(
        docker_client: Any, sandbox_image: str, scratch: Path, tmp_path: Path) -> None:
    victim = tmp_path / "labcoat-precious"  # the old check only asked for "labcoat" in it
    victim.mkdir()
    (victim / "data.txt").write_text("keep me\n")
    own = scratch / f"{socket.gethostname()}-{_dead_pid()}" / "labcoat-sweep-box"
    (own / "workspace").mkdir(parents=True)
    run_id = new_run_id("sweep")
    labels = [str(victim), f"{scratch}/../{tmp_path.name}/labcoat-precious", str(own)]
    ids = [_orphan(docker_client, sandbox_image, run_id, label) for label in labels]
    sneaky = scratch / "linkdir"
    sneaky.mkdir()
    (sneaky / "out").symlink_to(victim)
    ids.append(_orphan(docker_client, sandbox_image, run_id, str(sneaky / "out")))
    try:
        sweep_orphans(docker_client, scratch)
        # Every provider that starts sweeps this host's orphans, so under xdist another worker's
        # sweep may remove some of these first: count what is left, not what this sweep removed.
        left = labelled(docker_client, f"{LABEL_RUN}={run_id}")  # all four carry run_id
    finally:
        for cid in ids:
            with contextlib.suppress(Exception):  # the sweep removed it already
                docker_client.api.remove_container(cid, force=True)
    assert left == []
    assert (victim / "data.txt").read_text() == "keep me\n"  # named by three labels, kept
    assert not own.exists()  # a real sandbox folder of a dead process: gone


@needs_hard
def test_the_sweep_unmounts_the_images_of_a_killed_run(scratch: Path) -> None:
    """What a SIGKILLed labcoat leaves: its process folder with a mounted image in it."""
    dead = scratch / f"{socket.gethostname()}-{_dead_pid()}"
    dead.mkdir()
    assert make_image(dead / "box", LIMIT_MB) and os.path.ismount(dead / "box")
    sweep_scratch(scratch)
    assert not mounts_under(dead) and not dead.exists()


def test_doctor_says_how_disk_limits_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    check = check_disk_limits()
    assert check.ok and check.detail.startswith("hard" if HARD else "watchdog")
    monkeypatch.setenv("LABCOAT_DISK_LIMITS", "watchdog")
    check = check_disk_limits()
    assert check.detail.startswith("watchdog") and "overshoot" in check.fix


# ---- without an engine: the floor, the watchdog's measure, sparse copies ------------------------


def test_disk_floor_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, want in (("", 2048 << 20), ("500m", 500 << 20), ("10%", 100), ("0", 0)):
        monkeypatch.setenv(FLOOR_ENV, raw)
        assert disk_floor(1000) == want
    for raw in ("lots", "150%", "-1%", "1k"):
        monkeypatch.setenv(FLOOR_ENV, raw)
        with pytest.raises(ConfigError, match=FLOOR_ENV):
            disk_floor(1000)


def test_floor_check_names_the_disk_and_the_fix(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    provider = types.SimpleNamespace(scratch_root=tmp_path / "not-made-yet")
    monkeypatch.setenv(FLOOR_ENV, "0")
    check_disk_floor(tmp_path, provider)  # type: ignore[arg-type]
    monkeypatch.setenv(FLOOR_ENV, "100%")
    with pytest.raises(DiskLow) as err:
        check_disk_floor(tmp_path, provider)  # type: ignore[arg-type]
    assert err.value.exit_code == 3
    assert str(tmp_path) in str(err.value) and "labcoat resume" in str(err.value)


def test_the_watchdog_measures_allocated_blocks(tmp_path: Path) -> None:
    guard = DiskGuard(tmp_path, limit_mb=1, hard=False)
    (tmp_path / "sparse").write_bytes(b"")
    os.truncate(tmp_path / "sparse", 100 << 20)  # a hole takes no disk
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "half").write_bytes(bytes(512 << 10))
    assert not guard.full()
    (tmp_path / "d" / "more").write_bytes(bytes(1 << 20))
    assert guard.full()


def test_copy_sparse_keeps_holes(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    with open(src, "wb") as fh:
        fh.truncate(64 << 20)
        fh.seek(32 << 20)
        fh.write(b"middle")
    copy_sparse(src, dest)
    assert dest.stat().st_size == 64 << 20 and allocated(dest) < 1 << 20
    with open(dest, "rb") as fh:
        fh.seek(32 << 20)
        assert fh.read(6) == b"middle"
