"""What crosses the network between labcoat and a node: pydantic models and checked archives.

Nothing assumes a shared filesystem. A folder travels as an `Archive`: an uncompressed tar whose
members all sit below one top folder, with its sha256. The receiving side checks the digest
before reading a byte of it and extracts it with `files.extract_tar`, which refuses absolute and
`..` paths, links that leave the folder, device nodes and anything over its `Budget`: the same
refusals as a copy out of a local sandbox.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from labcoat.errors import UnsafeOutputError
from labcoat.sandboxes import files

TOP = "t"
"""The top folder every archive member sits below (`extract_tar` strips it)."""
CHUNK = 64 * 1024
"""Bytes handed to `extract_tar` at a time."""


class Archive(BaseModel):
    """A folder (or one file) as a tar, and the digest that vouches for it."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    name: str = ""
    """For a single file: its name inside the archive (the mount points at it)."""


class NodeInfo(BaseModel):
    """A node as labcoat names it: in the log, in container names and labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str
    """Ray's node id (hex)."""
    name: str
    """`<hostname>-<first 8 hex digits of the node id>`: unique even for nodes sharing a host."""
    hostname: str = ""
    address: str = ""
    """The node's IP address as Ray knows it."""


class LineAddress(BaseModel):
    """Where the driver reaches a sandbox's direct line for commands (`direct.py`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(gt=0, lt=65536)
    token: str = Field(repr=False, min_length=32)
    """What a connection must show first; whoever has it can run commands in the sandbox."""


class Opened(BaseModel):
    """A sandbox a node has started for a spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """The container id on the node's engine."""
    name: str
    """The container name (it carries the node's name)."""
    scratch: str
    """The node-local folder behind /workspace and /outputs."""
    gpu_ids: tuple[str, ...] = ()
    """The GPU device ids Ray gave the sandbox's actor on its node."""
    node: NodeInfo
    line: LineAddress | None = None
    """The sandbox's direct line for commands; None: commands go through Ray calls."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(source: Path) -> Archive:
    """A folder's contents (or one file) as an `Archive`. Runs on the side that trusts `source`:
    the driver's workspace and grader, or a folder a node has already copied out with refusals."""
    buf = io.BytesIO()
    name = ""
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(source.parent if source.is_file() else source, arcname=TOP, recursive=False)
        if source.is_file():
            name = source.name
            tar.add(source, arcname=f"{TOP}/{name}")
        else:
            for child in sorted(source.iterdir()):
                tar.add(child, arcname=f"{TOP}/{child.name}")
    data = buf.getvalue()
    return Archive(data=data, sha256=digest(data), name=name)


def unpack(archive: Archive, dest: Path, budget: files.Budget) -> int:
    """Check the digest, then extract into `dest` with `extract_tar`'s refusals; bytes written.
    A digest that does not match (a corrupted or truncated transfer) is refused whole."""
    found = digest(archive.data)
    if found != archive.sha256:
        raise UnsafeOutputError(
            f"{budget.where}: the archive's sha256 is {found[:16]}..., not the "
            f"{archive.sha256[:16]}... it was sent with (corrupted in transit); nothing was "
            "extracted. Retry the copy; if it keeps failing, check the network between the nodes")
    view = memoryview(archive.data)
    # Small chunks: the reader below copies what is left of a chunk on every read.
    chunks = (bytes(view[i:i + CHUNK]) for i in range(0, len(view), CHUNK))
    return files.extract_tar(chunks, dest, budget)
