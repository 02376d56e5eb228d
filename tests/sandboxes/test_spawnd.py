"""The exec agent's side of a command spawnd started: its exit pipe (no container needed)."""

from __future__ import annotations

import os
import signal
import threading

from labcoat.sandboxes.spawnd import Child


def child_with_exit_pipe(cleaned: threading.Event | None = None) -> tuple[Child, int]:
    exit_r, exit_w = os.pipe()
    return Child(4242, [None, None, None], exit_r, cleaned or threading.Event()), exit_w


def test_the_code_spawnd_writes_is_the_return_code() -> None:
    child, exit_w = child_with_exit_pipe()
    try:
        assert child.poll() is None  # nothing told yet: still running
        os.write(exit_w, b"-15")
        os.close(exit_w)
        assert child.poll() == -15
        assert child.wait() == -15
    finally:
        child.close()


def test_an_exit_pipe_that_ends_without_a_code_means_killed_once_the_cleanup_is_done() -> None:
    """spawnd died before telling (a command killed it): the agent kills every command, and only
    then may the command be reported killed (the next one must find nothing of it alive)."""
    cleaned = threading.Event()
    child, exit_w = child_with_exit_pipe(cleaned)
    try:
        os.close(exit_w)
        threading.Timer(0.2, cleaned.set).start()
        assert child.wait() == -signal.SIGKILL
        assert cleaned.is_set()
    finally:
        child.close()


def test_wait_blocks_until_the_code_comes() -> None:
    child, exit_w = child_with_exit_pipe()
    try:
        def tell() -> None:
            os.write(exit_w, b"3")
            os.close(exit_w)

        threading.Timer(0.1, tell).start()
        assert child.wait() == 3
    finally:
        child.close()
