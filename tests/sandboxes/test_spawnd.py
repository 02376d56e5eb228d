"""The exec agent's bookkeeping of the commands spawnd started (no container needed)."""

from __future__ import annotations

import os

from labcoat.sandboxes.spawnd import Child


def test_an_exit_told_after_the_command_was_closed_writes_nowhere() -> None:
    """The thread waiting for a command may see its exit code, finish and close the wake-up
    pipe before the reader thread writes the wake-up byte; that byte must then go nowhere, not
    into whatever reuses the descriptor (or a pipe without a reader: SIGPIPE)."""
    child = Child(4242, [None, None, None])
    wake_w = child.wake_w
    child.close()
    r, w = os.pipe()  # the lowest free descriptors: the ones just closed
    try:
        os.dup2(w, wake_w)  # make sure the old number now names a live pipe
        os.set_blocking(r, False)
        child.exited(3)
        assert child.wait() == 3
        try:
            leaked = os.read(r, 16)
        except BlockingIOError:
            leaked = b""
        assert leaked == b""
    finally:
        for fd in {r, w, wake_w}:
            os.close(fd)
