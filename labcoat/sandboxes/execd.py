"""execd: the exec daemon that runs inside every sandbox container (stdlib-only Python).

The host starts it with one `docker exec -i ... python3 -I -u -c <this source>` and talks to it in
JSON lines over that exec's stdin/stdout, so it works in any image that merely has python3 and needs
no network or port. Each request is answered on its own thread, so commands may overlap.

Requests: ``{"id": n, "op": "ping" | "exec" | "read" | "write", ...}``; replies carry the same
``id`` and either the op's fields or ``{"error": message, "errno": name}``.

``exec`` runs argv as the leader of a new session, streams both pipes into a head + tail buffer
(so memory stays bounded whatever the command prints), and at the deadline kills the whole tree:
the session, the process group, every descendant, and any process still carrying this command's
``LABCOAT_EXEC`` marker (which catches daemons that called setsid and were re-parented). OOM kills
are read from the memory cgroup's ``oom_kill`` counter before and after the command.

This file must stay importable and runnable on its own (no labcoat imports).
"""

import base64
import contextlib
import errno
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, BinaryIO

Request = dict[str, Any]
Reply = dict[str, Any]

MARKER_ENV = "LABCOAT_EXEC"
DRAIN_S = 0.2  # background children may keep the pipes open after the leader exits
OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
_write_lock = threading.Lock()


class Capture:
    """Keeps the first and the last `cap` bytes of a stream and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap, self.total, self.head = cap, 0, bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail.append(chunk)
            self.tail_len += len(chunk)
            while self.tail and self.tail_len - len(self.tail[0]) >= self.cap:
                self.tail_len -= len(self.tail.popleft())

    def text(self) -> str:
        tail = b"".join(self.tail)[-self.cap :] if self.tail else b""
        dropped = self.total - len(self.head) - len(tail)
        head = self.head.decode("utf-8", "replace")
        if dropped <= 0:
            return head + tail.decode("utf-8", "replace")
        marker = f"\n[... {dropped} bytes truncated ...]\n"
        return head + marker + tail.decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(self.tail_len, self.cap)


def oom_count() -> int:
    for path in OOM_FILES:
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return -1


def proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgrp, session) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if fields[0] != b"Z":  # zombies are already dead
                table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def carries_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in fh.read().split(b"\0")
    except OSError:
        return False


def tree_of(leader: int, marker: bytes) -> set[int]:
    """Every process that belongs to the command led by `leader`."""
    table, found = proc_table(), set[int]()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = [leader]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    for pid, (_, pgrp, sid) in table.items():
        if leader in (pgrp, sid) or carries_marker(pid, marker):
            found.add(pid)
    found.discard(os.getpid())
    found.discard(1)
    return found & set(table)


def kill_tree(leader: int, marker: bytes) -> None:
    """SIGKILL the tree until nothing of it is left (a fork bomb may need a few passes)."""
    for _ in range(50):
        victims = tree_of(leader, marker)
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not victims:
            return
        time.sleep(0.005)


def spawn(req: Request, marker: bytes) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(req.get("env") or {})
    env[MARKER_ENV] = marker.decode().split("=", 1)[1]
    has_stdin = req.get("stdin") is not None
    proc = subprocess.Popen(
        req["argv"], cwd=req.get("cwd") or None, env=env, start_new_session=True,
        stdin=subprocess.PIPE if has_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:  # make the command, not the agent, the OOM killer's first choice
        with open(f"/proc/{proc.pid}/oom_score_adj", "w") as fh:
            fh.write("500")
    except OSError:
        pass
    return proc


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: fewer wake-ups on big output


class Pump:
    """Moves stdin in and both streams out of one process until it exits (or the deadline)."""

    def __init__(self, proc: subprocess.Popen[bytes], cap: int, stdin_data: bytes | None,
                 ) -> None:
        self.proc, self.sel = proc, selectors.DefaultSelector()
        self.out, self.err = Capture(cap), Capture(cap)
        self.pending = memoryview(stdin_data or b"")
        assert proc.stdout is not None and proc.stderr is not None
        for pipe, cap_buf in ((proc.stdout, self.out), (proc.stderr, self.err)):
            _grow_pipe(pipe.fileno())
            os.set_blocking(pipe.fileno(), False)
            self.sel.register(pipe.fileno(), selectors.EVENT_READ, cap_buf)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, None)
        self.exit_fd = self._exit_fd(proc.pid)

    def _exit_fd(self, pid: int) -> int | None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return None
        self.sel.register(fd, selectors.EVENT_READ, "exit")
        return fd

    def run(self, deadline: float | None) -> bool:
        """Returns True when the deadline passed first."""
        exited_at = None
        while True:
            now = time.monotonic()
            if exited_at is None and self.proc.poll() is not None:
                exited_at = now
            if exited_at is not None and (not self._reading() or now - exited_at > DRAIN_S):
                return False
            if exited_at is None and deadline is not None and now >= deadline:
                return True
            self._step(self._wait_s(now, deadline, exited_at))

    def _reading(self) -> bool:
        return any(isinstance(key.data, Capture) for key in self.sel.get_map().values())

    def _wait_s(self, now: float, deadline: float | None, exited_at: float | None) -> float:
        wait = 0.05 if self.exit_fd is None else 1.0
        if exited_at is not None:
            wait = min(wait, DRAIN_S)
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - now))
        return wait

    def _step(self, wait: float) -> None:
        for key, _ in self.sel.select(wait):
            if key.data == "exit":
                self.sel.unregister(key.fd)
            elif key.data is None:
                self._feed(key.fd)
            else:
                self._drain(key.fd, key.data)

    def _feed(self, fd: int) -> None:
        try:
            sent = os.write(fd, self.pending[: 1 << 16])
            self.pending = self.pending[sent:]
        except BlockingIOError:
            return
        except OSError:
            self.pending = self.pending[:0]
        if not self.pending:
            self.sel.unregister(fd)
            if self.proc.stdin is not None:
                self.proc.stdin.close()

    def _drain(self, fd: int, capture: Capture) -> None:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        if chunk:
            capture.add(chunk)
        else:
            self.sel.unregister(fd)

    def close(self) -> None:
        self.sel.close()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def op_exec(req: Request) -> Reply:
    marker = f"{MARKER_ENV}={os.getpid()}-{req['id']}-{os.urandom(4).hex()}".encode()
    stdin = base64.b64decode(req["stdin"]) if req.get("stdin") is not None else None
    oom_before, started = oom_count(), time.monotonic()
    deadline = started + req["timeout"] if req.get("timeout") else None
    try:
        proc = spawn(req, marker)
    except OSError as err:
        code = 127 if err.errno == errno.ENOENT else 126
        text = f"labcoat: cannot run {req['argv'][0]}: {err}\n"
        return {"rc": code, "stdout": "", "stderr": text, "timed_out": False, "oom": False,
                "truncated": False, "dur": 0.0}
    pump = Pump(proc, req.get("cap", 262144), stdin)
    try:
        timed_out = pump.run(deadline)
        if timed_out:
            kill_tree(proc.pid, marker)
            pump.run(None)
        rc = proc.wait()
    finally:
        pump.close()
    return {"rc": 128 - rc if rc < 0 else rc, "stdout": pump.out.text(), "stderr": pump.err.text(),
            "timed_out": timed_out, "oom": oom_count() > oom_before >= 0,
            "truncated": pump.out.truncated or pump.err.truncated,
            "dur": time.monotonic() - started}


def op_read(req: Request) -> Reply:
    with open(req["path"], "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > req["max"]:
            return {"too_big": size}
        data = fh.read(req["max"] + 1)
    if len(data) > req["max"]:
        return {"too_big": len(data)}
    return {"data": base64.b64encode(data).decode()}


def op_write(req: Request) -> Reply:
    parent = os.path.dirname(req["path"])
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(req["path"], "wb") as fh:
        fh.write(base64.b64decode(req["data"]))
    return {}


def op_ping(req: Request) -> Reply:
    return {"pid": os.getpid(), "python": sys.version.split()[0], "oom": oom_count()}


OPS = {"exec": op_exec, "read": op_read, "write": op_write, "ping": op_ping}


def reply(out: BinaryIO, msg: Reply) -> None:
    line = json.dumps(msg).encode() + b"\n"
    with _write_lock:
        out.write(line)
        out.flush()


def handle(out: BinaryIO, req: Request) -> None:
    try:
        msg = OPS[req["op"]](req)
    except OSError as err:
        msg = {"error": str(err), "errno": errno.errorcode.get(err.errno or 0, "")}
    except Exception as err:  # a bug here must reach the host, not kill the agent
        msg = {"error": f"{type(err).__name__}: {err}", "errno": ""}
    msg["id"] = req.get("id")
    reply(out, msg)


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
        except ValueError:
            sys.stderr.write(f"labcoat agent: ignoring a line that is not JSON: {line[:80]!r}\n")
            continue
        threading.Thread(target=handle, args=(out, req), daemon=True).start()


if __name__ == "__main__":
    main()
