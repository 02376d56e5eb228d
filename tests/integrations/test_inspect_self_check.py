"""Inspect AI's own sandbox conformance suite (`self_check`, 44 checks in inspect_ai 0.3.285),
run through labcoat's Inspect provider against real containers, on both paths: labcoat's exec
channel and one engine exec per command. Every check passes but those in `REFUSED`.

The checks are Inspect's, imported as they ship (`from ... import *` puts them in this module
for pytest); the provider comes from Inspect's registry by name, found through the entry point
labcoat declares, as an Inspect user would get it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from inspect_ai._util.entrypoints import ensure_entry_points
from inspect_ai.util._sandbox.registry import registry_find_sandboxenv
from inspect_ai.util._sandbox.self_check import *  # noqa: F403

from labcoat.integrations.inspect_sandbox import LabcoatSandboxConfig, LabcoatSandboxEnvironment

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

REFUSED = {
    "test_exec_as_user": "needs `user='root'`: labcoat runs every command as its sandbox user "
                         "and refuses other users on purpose (SandboxUserUnsupportedError)",
}
"""Checks labcoat fails on purpose, with the reason (the README lists them)."""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["channel", "exec"])
async def labcoat_env(request: pytest.FixtureRequest, sandbox_image: str,
                      ) -> AsyncIterator[LabcoatSandboxEnvironment]:
    """One sandbox per path for the whole suite (its checks clean up after themselves)."""
    ensure_entry_points()
    provider_class = registry_find_sandboxenv("labcoat")
    assert provider_class is LabcoatSandboxEnvironment
    task = f"self-check-{request.param}"
    config = LabcoatSandboxConfig(image=sandbox_image, memory_mb=1024, tmpfs_mb=256,
                                  exec_channel=request.param == "channel")
    envs = await provider_class.sample_init(task, config, {})
    env = envs["default"].as_type(LabcoatSandboxEnvironment)
    assert (request.param == "channel") == env.box.uses_channel
    yield env
    await provider_class.sample_cleanup(task, config, envs, False)
    await provider_class.task_cleanup(task, config, True)


@pytest.fixture
async def sandbox_env(labcoat_env: LabcoatSandboxEnvironment, request: pytest.FixtureRequest,
                      ) -> AsyncIterator[Any]:
    reason = REFUSED.get(request.node.originalname)
    if reason is not None:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    yield labcoat_env


def test_inspect_ships_the_44_checks_we_run() -> None:
    checks = [name for name in globals() if name.startswith("test_") and
              name not in {"test_inspect_ships_the_44_checks_we_run"}]
    assert len(checks) == 44, checks
    assert set(REFUSED) <= set(checks)
