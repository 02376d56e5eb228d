"""An Inspect AI sandbox provider backed by labcoat's hardened Docker sandboxes.

    pip install 'labcoat[inspect]'

    eval(task, sandbox="labcoat")                                   # labcoat's own image
    eval(task, sandbox=("labcoat", LabcoatSandboxConfig(image="python:3.12-slim", cpus=2)))

Inspect finds the provider by name through its own entry point (group `inspect_ai`, which
imports this module and so runs `@sandboxenv`). Each sample gets a fresh container with
labcoat's hardening (no network unless asked, no capabilities, no-new-privileges, read-only
root, pids/memory/CPU limits) and its millisecond exec channel; every container of a task is
removed at the task's end, and `inspect sandbox cleanup labcoat` sweeps those of dead processes.

What is refused, on purpose: running as another user. Every command runs as labcoat's sandbox
user (uid 10001); `user="root"` (or any other user) raises `SandboxUserUnsupportedError`, so
agent code never runs as root. Inspect's `test_exec_as_user` self-check needs root and is the
one check this provider does not pass (the README's "Inspect AI" section).

Errors as Inspect documents them: a timeout is `TimeoutError`, a program that is not executable
`PermissionError` (one that does not exist is a failed `ExecResult`), file errors are the
`OSError`s Python raises, a file over the read limit is `OutputLimitExceededError`, and a
sandbox that died is `SandboxUnavailableError`.
"""

from __future__ import annotations

import contextlib
import errno
import uuid
from collections.abc import Iterator
from typing import Literal, overload

from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    SandboxUnavailableError,
    SandboxUserUnsupportedError,
    sandboxenv,
)
from pydantic import BaseModel, ConfigDict, Field

from labcoat.errors import SandboxUnavailable, UnsafeOutputError
from labcoat.sandboxes import DockerProvider, Sandbox, SandboxSpec
from labcoat.sandboxes.channel import SANDBOX_UID

SANDBOX_USERS = frozenset({"labcoat", str(SANDBOX_UID), f"{SANDBOX_UID}:{SANDBOX_UID}"})
"""Names of the one user commands run as (None, the default, is that user too)."""


class LabcoatSandboxConfig(BaseModel):
    """How each sample's sandbox is made (`sandbox=("labcoat", LabcoatSandboxConfig(...))`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = None
    """Image tag; None: labcoat's own sandbox image (`labcoat sandbox build` makes it)."""
    cpus: float = Field(default=1.0, gt=0)
    """CPU quota in cores."""
    memory_mb: int = Field(default=2048, gt=0)
    """Memory limit (swap is not allowed beyond it)."""
    pids_limit: int = Field(default=512, gt=0)
    """Most processes and threads in the container."""
    network: Literal["none", "bridge"] = "none"
    """`bridge` gives the sample network access."""
    tmpfs_mb: int = Field(default=512, gt=0)
    """Size of the tmpfs at /tmp."""
    exec_channel: bool = True
    """False: one engine exec per command instead of labcoat's exec channel."""


class LabcoatSandboxEnvironment(SandboxEnvironment):
    """One labcoat sandbox as an Inspect `SandboxEnvironment`."""

    _providers: dict[tuple[str, bool], DockerProvider] = {}

    def __init__(self, box: Sandbox) -> None:
        super().__init__()
        self.box = box

    # ---- lifecycle --------------------------------------------------------------------------

    @classmethod
    def config_deserialize(cls, config: dict[str, object]) -> BaseModel:
        return LabcoatSandboxConfig.model_validate(config)

    @classmethod
    async def sample_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None,
                          metadata: dict[str, str]) -> dict[str, SandboxEnvironment]:
        cfg = _config(config)
        provider = await cls._provider(task_name, cfg)
        spec = await _spec(provider, cfg, task_name)
        return {"default": cls(await provider.create(spec))}

    @classmethod
    async def sample_cleanup(cls, task_name: str, config: SandboxEnvironmentConfigType | None,
                             environments: dict[str, SandboxEnvironment],
                             interrupted: bool) -> None:
        for env in environments.values():
            with contextlib.suppress(Exception):  # a dead container is removed all the same
                await env.as_type(LabcoatSandboxEnvironment).box.aclose()

    @classmethod
    async def task_cleanup(cls, task_name: str, config: SandboxEnvironmentConfigType | None,
                           cleanup: bool) -> None:
        provider = cls._providers.pop((task_name, _config(config).exec_channel), None)
        if provider is not None and cleanup:
            await provider.aclose()

    @classmethod
    async def cli_cleanup(cls, id: str | None) -> None:
        async with DockerProvider() as provider:
            await provider.cleanup(id)

    @classmethod
    async def _provider(cls, task_name: str, cfg: LabcoatSandboxConfig) -> DockerProvider:
        key = (task_name, cfg.exec_channel)
        if key not in cls._providers:
            run_id = f"inspect-{task_name[:40]}-{uuid.uuid4().hex[:8]}"
            provider = DockerProvider(run_id, exec_channel=cfg.exec_channel)
            await provider.start()
            cls._providers[key] = provider
        return cls._providers[key]

    # ---- commands and files -----------------------------------------------------------------

    async def exec(self, cmd: list[str], input: str | bytes | None = None,
                   cwd: str | None = None, env: dict[str, str] | None = None,
                   user: str | None = None, timeout: int | None = None,
                   timeout_retry: bool = True, concurrency: bool = True) -> ExecResult[str]:
        if user is not None and user not in SANDBOX_USERS:
            raise SandboxUserUnsupportedError(
                f"labcoat runs every command as its sandbox user (uid {SANDBOX_UID}); running as "
                f"{user!r} is refused on purpose, so that agent code never runs as root")
        with _unavailable():
            res = await self.box.exec(list(cmd), cwd=cwd, env=env, timeout_s=timeout,
                                      stdin=input)
        if res.timed_out:
            raise TimeoutError(f"{cmd[0]!r} timed out after {timeout} s (its process tree was "
                               "killed)")
        if res.start_error == "EACCES":
            raise PermissionError(errno.EACCES, f"cannot execute {cmd[0]!r}: {res.stderr.strip()}")
        return ExecResult(success=res.returncode == 0, returncode=res.returncode,
                          stdout=res.stdout, stderr=res.stderr)

    async def write_file(self, file: str, contents: str | bytes) -> None:
        with _unavailable():
            await self.box.write_file(file, contents)

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> str | bytes:
        limit = SandboxEnvironmentLimits.MAX_READ_FILE_SIZE
        try:
            with _unavailable():
                data = await self.box.read_file(file, max_bytes=limit)
        except UnsafeOutputError:  # over the limit: the only refusal read_file makes
            raise OutputLimitExceededError(SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR,
                                           None) from None
        # newline="" semantics: the bytes decoded as they are, CRLF kept
        return data.decode("utf-8") if text else data


def _config(config: SandboxEnvironmentConfigType | None) -> LabcoatSandboxConfig:
    if isinstance(config, LabcoatSandboxConfig):
        return config
    if config is None:
        return LabcoatSandboxConfig()
    raise ValueError(f"sandbox 'labcoat' takes a LabcoatSandboxConfig, not {config!r}; e.g. "
                     "sandbox=('labcoat', LabcoatSandboxConfig(cpus=2))")


async def _spec(provider: DockerProvider, cfg: LabcoatSandboxConfig, task: str) -> SandboxSpec:
    from labcoat.sandboxes.image import default_image

    return SandboxSpec(
        image=cfg.image or default_image(), run_id=str(provider.run_id), subtask_id=task[:40],
        cpus=cfg.cpus, memory_mb=cfg.memory_mb, pids_limit=cfg.pids_limit,
        network=cfg.network, tmpfs_mb=cfg.tmpfs_mb,
        # Inspect's own output limit, kept as head + tail
        output_cap_bytes=SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE // 2)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """labcoat's infrastructure failure as Inspect's."""
    try:
        yield
    except SandboxUnavailable as err:
        raise SandboxUnavailableError(str(err)) from err


sandboxenv(name="labcoat")(LabcoatSandboxEnvironment)

__all__ = ["LabcoatSandboxConfig", "LabcoatSandboxEnvironment"]
