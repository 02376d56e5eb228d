"""Untrusted trees on the host side: tar streams and sandbox folders that try to escape."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from labcoat.errors import UnsafeOutputError
from labcoat.sandboxes.files import Budget, copy_in, copy_out, extract_tar


def tar_stream(*members: tuple[tarfile.TarInfo, bytes | None]) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return [raw[i : i + 7000] for i in range(0, len(raw), 7000)]  # arrives in odd chunks


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def test_extract_keeps_a_clean_tree(tmp_path: Path) -> None:
    chunks = tar_stream((member("out/", tarfile.DIRTYPE), None), (member("out/a.txt"), b"A" * 9000),
                        (member("out/sub/", tarfile.DIRTYPE), None),
                        (member("out/sub/l", tarfile.SYMTYPE, "../a.txt"), None),
                        (member("out/h", tarfile.LNKTYPE, "out/a.txt"), None))
    budget = Budget(where="test")
    assert extract_tar(iter(chunks), tmp_path / "d", budget) == 9000
    assert (tmp_path / "d" / "sub" / "l").read_bytes() == b"A" * 9000
    assert (tmp_path / "d" / "h").read_bytes() == b"A" * 9000


@pytest.mark.parametrize(("bad", "why"), [
    ((member("/etc/cron.d/x"), b"x"), "absolute"),
    ((member("out/../../evil"), b"x"), "absolute or `..`"),
    ((member("out/l", tarfile.SYMTYPE, "/etc/passwd"), None), "points outside"),
    ((member("out/l", tarfile.SYMTYPE, "../../etc"), None), "points outside"),
    ((member("out/dev", tarfile.CHRTYPE), None), "device node"),
    ((member("out/fifo", tarfile.FIFOTYPE), None), "FIFO"),
    ((member("out/h", tarfile.LNKTYPE, "etc/passwd"), None), "hard link"),
])
def test_extract_refuses(tmp_path: Path, bad: tuple[tarfile.TarInfo, bytes | None], why: str,
                         ) -> None:
    chunks = tar_stream((member("out/", tarfile.DIRTYPE), None), bad)
    with pytest.raises(UnsafeOutputError, match=why.replace("`", "").split()[0]):
        extract_tar(iter(chunks), tmp_path / "d", Budget(where="test"))
    assert not (tmp_path / "evil").exists()


def test_extract_never_writes_through_a_symlink(tmp_path: Path) -> None:
    chunks = tar_stream((member("out/s", tarfile.SYMTYPE, "."), None),
                        (member("out/s/s/x"), b"through"))
    with pytest.raises(UnsafeOutputError, match="below a symlink"):
        extract_tar(iter(chunks), tmp_path / "d", Budget(where="test"))


def test_symlink_chain_that_escapes_physically_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    os.symlink("..", src / "d" / "s")        # lexically d/.. = inside
    os.symlink("d/s/../x", src / "l")        # lexically d/x, physically ../x
    with pytest.raises(UnsafeOutputError, match="resolve outside"):
        copy_out(tmp_path, "src", tmp_path / "out", Budget(where="test"))
    assert not os.path.lexists(tmp_path / "out" / "l")


def test_copy_out_caps(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"x" * 100)
    (tmp_path / "src" / "b").write_bytes(b"x" * 100)
    with pytest.raises(UnsafeOutputError, match="per-file cap of 50 bytes"):
        copy_out(tmp_path, "src", tmp_path / "o1", Budget(max_file=50, where="test"))
    shared = Budget(max_total=250, where="test")
    assert copy_out(tmp_path, "src", tmp_path / "o2", shared) == 200
    with pytest.raises(UnsafeOutputError, match="cap of 250 bytes"):
        copy_out(tmp_path, "src", tmp_path / "o3", shared)  # the allowance is per sandbox


def test_copy_in_refuses_a_planted_symlink(tmp_path: Path) -> None:
    """The sandbox pre-creates /workspace/src -> /etc: our host-side copy must not follow it."""
    root, outside = tmp_path / "bind", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "src")
    (tmp_path / "tree" / "src").mkdir(parents=True)
    (tmp_path / "tree" / "src" / "f").write_text("payload")
    with pytest.raises(UnsafeOutputError):
        copy_in(tmp_path / "tree" / "src", root, "src", None)
    with pytest.raises((UnsafeOutputError, OSError)):
        copy_in(tmp_path / "tree", root, ".", None)
    assert list(outside.iterdir()) == []


def _churn(root: Path, stop: threading.Event) -> None:
    """What a daemon left running in a sandbox does: entries appear, vanish and change kind."""
    names = [root / f"e{i}" for i in range(40)]
    while not stop.is_set():
        for path in names:
            with contextlib.suppress(OSError):
                path.write_bytes(b"x" * 100)
                path.unlink()
                path.symlink_to("e0")
                path.unlink()
                path.mkdir()
                (path / "f").write_text("y")
                (path / "f").unlink()
                path.rmdir()


def test_copy_out_of_a_changing_tree_fails_only_as_unsafe_output(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "kept.txt").write_text("k")
    stop = threading.Event()
    churner = threading.Thread(target=_churn, args=(src, stop), daemon=True)
    churner.start()
    outcomes: dict[str, int] = {}
    try:
        for i in range(3000):
            if outcomes.get("refused", 0) >= 5:
                break
            try:
                copy_out(src, ".", tmp_path / f"out{i}", Budget(where="test"))
                outcomes["copied"] = outcomes.get("copied", 0) + 1
            except UnsafeOutputError:  # never a bare OSError
                outcomes["refused"] = outcomes.get("refused", 0) + 1
    finally:
        stop.set()
        churner.join()
    assert outcomes.get("refused", 0) > 0, outcomes  # the race was really run
