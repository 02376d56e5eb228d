"""What crosses the network to a node: archives checked by sha256, extracted with the refusals of
a copy out of a sandbox (no Ray, no Docker)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from labcoat.errors import UnsafeOutputError
from labcoat.sandboxes import files
from labcoat.sandboxes.ray import wire


def _budget(max_total: int | None = None) -> files.Budget:
    return files.Budget(max_file=1 << 30, max_total=max_total, where="test")


def test_a_tree_travels_whole(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(300_000))  # several reader chunks
    (src / "sub" / "b.txt").write_text("b")
    archive = wire.pack(src)
    assert wire.unpack(archive, tmp_path / "out", _budget()) == 300_001
    assert (tmp_path / "out" / "a.bin").read_bytes() == (src / "a.bin").read_bytes()
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "b"


def test_a_corrupted_archive_is_refused_whole(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("payload")
    archive = wire.pack(src)
    flipped = bytearray(archive.data)
    flipped[len(flipped) // 3] ^= 0xFF
    bad = archive.model_copy(update={"data": bytes(flipped)})
    with pytest.raises(UnsafeOutputError, match="sha256"):
        wire.unpack(bad, tmp_path / "out", _budget())
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_escaping_member_is_refused_even_with_a_good_digest(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(f"{wire.TOP}/../../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    data = buf.getvalue()
    archive = wire.Archive(data=data, sha256=wire.digest(data))
    with pytest.raises(UnsafeOutputError):
        wire.unpack(archive, tmp_path / "out", _budget())
    assert not (tmp_path / "escape.txt").exists()


def test_the_budget_holds(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(b"x" * 10_000)
    with pytest.raises(UnsafeOutputError):
        wire.unpack(wire.pack(src), tmp_path / "out", _budget(max_total=1_000))
