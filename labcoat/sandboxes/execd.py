"""execd: the exec daemon that runs inside every sandbox container (stdlib-only Python).

The host starts it once per container as root (`docker exec -i -u 0 ... python3 -I -u -c <this
source> UID GID`) and talks to it over that exec's stdin/stdout; each request gets a thread of
its own (kept for the next when idle).

It keeps only CAP_SETUID/SETGID/KILL (and SETPCAP, used once to empty the bounding set commands
inherit), no groups, and is non-dumpable. Commands run as UID:GID with no groups, no capabilities
and no-new-privileges; file operations run under that user's filesystem identity (`setfsuid`, per
thread), so files are made, owned and refused as the sandbox user's. A command can neither signal
execd nor open its descriptors: replies cannot be forged and execd cannot be killed from inside.

Wire format, both ways: one JSON object per line; bytes are announced (`"blob": n` in a request,
`"blobs": [n, ...]` in a reply) and follow the line raw. Requests: ``{"id": n, "op": "ping" |
"exec" | "read" | "write" | "kill_all", ...}``; replies carry the same ``id`` and the op's fields
or ``{"error": message, "errno": name}``.

``exec`` runs argv as a session leader, keeps head + tail of both pipes, and at the deadline kills
the tree (session, group, descendants, and whatever carries its ``LABCOAT_EXEC`` marker). From
the cgroup's ``oom_kill`` counter: ``oom`` (the command itself died of it) and ``oom_kills`` (how
many others did meanwhile); ``start_error`` names the errno of a command that could not start.
``kill_all`` SIGKILLs every process of the sandbox user until none is left. This file must stay
importable and runnable on its own (no labcoat imports).
"""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import stat
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # at run time spawnd's source comes in argv and is loaded by `main`
    from labcoat.sandboxes.spawnd import Child, Spawner

Request = dict[str, Any]
Reply = tuple[dict, list[bytes]]

MARKER_ENV = "LABCOAT_EXEC"
DRAIN_S = 0.2  # background children may keep the pipes open after the leader exits
OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
PR_SET_DUMPABLE, PR_CAPBSET_DROP = 4, 24
_write_lock = threading.Lock()


class SandboxUser:
    """The identity commands and file operations take: uid:gid, no groups, no capabilities."""

    def __init__(self, uid: int, gid: int, libc: ctypes.CDLL | None) -> None:
        self.uid, self.gid, self.libc = uid, gid, libc

    @contextlib.contextmanager
    def files(self) -> Iterator[None]:
        """This thread's filesystem identity is the sandbox user's for the block."""
        libc = self.libc
        assert libc is not None, "harden() first"
        libc.setfsgid(self.gid)
        libc.setfsuid(self.uid)
        try:
            yield
        finally:
            libc.setfsuid(0)
            libc.setfsgid(0)


USER = SandboxUser(10001, 10001, None)
SPAWNER: "Spawner | None" = None


def harden(uid: int, gid: int) -> SandboxUser:
    """Non-dumpable, no groups, an empty bounding set for every child; refuse to run unprivileged
    (commands would then share execd's uid, and could forge its replies)."""
    if os.geteuid() != 0:
        raise SystemExit("labcoat agent: must start as root (it drops to the sandbox user)")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_DUMPABLE, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
               ctypes.c_ulong(0))
    os.setgroups([])
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):  # without CAP_SETPCAP this fails: children keep CapEff=0 anyway
        libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
    return SandboxUser(uid, gid, libc)


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

    def data(self) -> bytes:
        """Head and tail, with a `[... N bytes truncated ...]` marker between when cut."""
        tail = b"".join(self.tail)[-self.cap :] if self.tail else b""
        dropped = self.total - len(self.head) - len(tail)
        if dropped <= 0:
            return bytes(self.head) + tail
        return bytes(self.head) + f"\n[... {dropped} bytes truncated ...]\n".encode() + tail

    def text(self) -> str:
        return self.data().decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(self.tail_len, self.cap)


_oom_fd: "list[int]" = []  # the cgroup file found first, kept open: read twice per command


def oom_count() -> int:
    """The cgroup's count of OOM kills so far (-1: no cgroup file tells)."""
    for path in OOM_FILES if not _oom_fd else ():
        with contextlib.suppress(OSError):
            _oom_fd.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            break
    try:
        text = os.pread(_oom_fd[0], 4096, 0)  # cgroup files are regenerated at each read
        start = text.index(b"oom_kill ")
        return int(text[start + 9 : text.index(b"\n", start)])
    except (OSError, ValueError, IndexError):  # IndexError: no cgroup file tells
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
    try:  # readable only with the sandbox user's filesystem identity (see `tree_of`)
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in fh.read().split(b"\0")
    except OSError:
        return False


def tree_of(leader: int, marker: bytes) -> set:
    """Every process that belongs to the command led by `leader`."""
    table, found = proc_table(), set()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = [leader]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    with USER.files():
        for pid, (_, pgrp, sid) in table.items():
            if leader in (pgrp, sid) or carries_marker(pid, marker):
                found.add(pid)
    found.discard(os.getpid())
    found.discard(1)
    return found & set(table)


def kill_until_gone(find: Callable[[], Iterable[int]], rounds: int) -> set:
    """SIGKILL what `find()` names until it names nothing (a fork bomb refills between passes;
    the pids limit bounds it)."""
    killed: set = set()
    for _ in range(rounds):
        victims = set(find())
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not victims:
            break
        killed |= victims
        time.sleep(0.002)
    return killed


def user_pids(uid: int) -> list[int]:
    """Live processes whose real uid is `uid` (read from status: a non-dumpable process's
    /proc folder is owned by root, whoever runs it)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/status") as fh:
                fields = {key: value for key, _, value in (ln.partition(":") for ln in fh)}
        except OSError:
            continue
        state, uids = fields.get("State", "Z").split(), fields.get("Uid", "").split()
        if uids and int(uids[0]) == uid and state and state[0] not in ("Z", "X"):
            found.append(int(name))
    return found


def spawn(req: Request, marker: bytes, has_stdin: bool) -> "Child":
    """Start a command through spawnd; OSError when it could not start."""
    env = {**os.environ, **(req.get("env") or {}), MARKER_ENV: marker.decode().split("=", 1)[1]}
    assert SPAWNER is not None, "main() first"
    return SPAWNER.start_command(req["argv"], env, req.get("cwd") or "/", has_stdin)


class Pump:
    """Moves stdin in and both streams out of one process until it exits (or the deadline)."""

    PIPE_SIZE = 1 << 16  # what a pipe holds by default: a read this long found it full

    def __init__(self, proc: "Child", cap: int, stdin_data: bytes | None) -> None:
        self.proc, self.poller = proc, select.poll()
        self.out, self.err = Capture(cap), Capture(cap)
        self.pending = memoryview(stdin_data or b"")
        self.handlers: dict[int, Capture | str] = {}
        assert proc.stdout is not None and proc.stderr is not None
        for pipe, capture in ((proc.stdout, self.out), (proc.stderr, self.err)):
            os.set_blocking(pipe.fileno(), False)
            self._watch(pipe.fileno(), select.POLLIN, capture)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            self._watch(proc.stdin.fileno(), select.POLLOUT, "stdin")
        self._watch(proc.exit_r, select.POLLIN, "exit")  # readable once spawnd told the exit

    def _watch(self, fd: int, events: int, handler: "Capture | str") -> None:
        self.poller.register(fd, events)
        self.handlers[fd] = handler

    def _unwatch(self, fd: int) -> None:
        self.poller.unregister(fd)
        del self.handlers[fd]

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
        return any(isinstance(handler, Capture) for handler in self.handlers.values())

    def _wait_s(self, now: float, deadline: float | None, exited_at: float | None) -> float:
        wait = 1.0 if exited_at is None else DRAIN_S
        return wait if deadline is None else min(wait, max(0.0, deadline - now))

    def _step(self, wait: float) -> None:
        for fd, _ in self.poller.poll(wait * 1e3):
            handler = self.handlers.get(fd)
            if handler == "exit":
                self._unwatch(fd)
            elif handler == "stdin":
                self._feed(fd)
            elif isinstance(handler, Capture):
                self._drain(fd, handler)

    def _feed(self, fd: int) -> None:
        try:
            sent = os.write(fd, self.pending[: 1 << 16])
            self.pending = self.pending[sent:]
        except BlockingIOError:
            return
        except OSError:
            self.pending = self.pending[:0]
        if not self.pending:
            self._unwatch(fd)
            self.proc.stdin.close()  # type: ignore[union-attr]  # fed only when there is one

    def _drain(self, fd: int, capture: Capture) -> None:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        if len(chunk) == self.PIPE_SIZE:  # big output: fewer wake-ups with a bigger pipe
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        if chunk:
            capture.add(chunk)
        else:
            self._unwatch(fd)

    def close(self) -> None:
        self.proc.close()  # its exit pipe
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def op_exec(req: Request, stdin: bytes | None) -> Reply:
    marker = f"{MARKER_ENV}={os.getpid()}-{req['id']}-{os.urandom(4).hex()}".encode()
    oom_before, started = oom_count(), time.monotonic()
    deadline = started + req["timeout"] if req.get("timeout") else None
    try:
        proc = spawn(req, marker, stdin is not None)
    except OSError as err:
        return not_started(req["argv"][0], err)
    pump = Pump(proc, req.get("cap", 262144), stdin)
    try:
        timed_out = pump.run(deadline)
        if timed_out:
            kill_until_gone(lambda: tree_of(proc.pid, marker), 50)
            pump.run(None)
        rc = proc.wait()
    finally:
        pump.close()
    ooms = max(0, oom_count() - oom_before) if oom_before >= 0 else 0
    died = rc == -signal.SIGKILL and ooms > 0 and not timed_out  # the command itself
    return ({"rc": 128 - rc if rc < 0 else rc, "timed_out": timed_out, "oom": died,
             "oom_kills": ooms - died, "truncated": pump.out.truncated or pump.err.truncated,
             "dur": time.monotonic() - started}, [pump.out.data(), pump.err.data()])


def not_started(program: str, err: OSError) -> Reply:
    code = 127 if err.errno == errno.ENOENT else 126
    text = f"labcoat: cannot run {program}: {err}\n".encode()
    return ({"rc": code, "timed_out": False, "oom": False, "oom_kills": 0, "truncated": False,
             "dur": 0.0, "start_error": errno.errorcode.get(err.errno or 0, "EIO")}, [b"", text])


def op_read(req: Request, _: bytes | None) -> Reply:
    with USER.files():
        fd = os.open(req["path"], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory", req["path"])
            if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
                raise OSError(errno.EINVAL, "not a regular file", req["path"])
            if st.st_size > req["max"]:
                return {"too_big": st.st_size}, []
            data = fh.read(req["max"] + 1)
    if len(data) > req["max"]:
        return {"too_big": len(data)}, []
    return {}, [data]


def op_write(req: Request, data: bytes | None) -> Reply:
    path = req["path"]
    with USER.files():
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        # O_NONBLOCK: a FIFO without a reader fails at once instead of blocking this thread
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data or b"")
    return {}, []


def op_kill_all(req: Request, _: bytes | None) -> Reply:
    """Every process of the sandbox user but spawnd (labcoat's own, and idle)."""
    keep = SPAWNER.pid if SPAWNER is not None else 0
    killed = kill_until_gone(lambda: set(user_pids(USER.uid)) - {keep}, 200)
    return {"killed": len(killed), "left": len(set(user_pids(USER.uid)) - {keep})}, []


def op_ping(req: Request, _: bytes | None) -> Reply:
    return {"pid": os.getpid(), "python": sys.version.split()[0], "oom": oom_count()}, []


OPS = dict(exec=op_exec, read=op_read, write=op_write, kill_all=op_kill_all, ping=op_ping)


def send(out: BinaryIO, header: dict, blobs: list[bytes]) -> None:
    if blobs:
        header["blobs"] = [len(b) for b in blobs]
    with _write_lock:
        try:
            for part in (json.dumps(header).encode() + b"\n", *blobs):
                view = memoryview(part)
                while view:  # with -u stdout is unbuffered: a write may take only part
                    view = view[out.write(view) or 0 :]
        except BrokenPipeError:  # the host's end is gone: nobody is left to answer
            os._exit(0)


def handle(out: BinaryIO, req: Request, blob: bytes | None) -> None:
    try:
        header, blobs = OPS[req["op"]](req, blob)
    except OSError as err:
        header, blobs = {"error": str(err), "errno": errno.errorcode.get(err.errno or 0, "")}, []
    except Exception as err:  # a bug here must reach the host, not kill the agent
        header, blobs = {"error": f"{type(err).__name__}: {err}", "errno": ""}, []
    header["id"] = req.get("id")
    send(out, header, blobs)


def main() -> None:
    global USER, SPAWNER
    uid, gid, spawnd_source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    USER = harden(uid, gid)
    spawnd = types.ModuleType("spawnd")
    exec(compile(spawnd_source, "spawnd.py", "exec"), spawnd.__dict__)
    SPAWNER = spawnd.Spawner(spawnd_source, uid, gid,
                             lambda: kill_until_gone(lambda: user_pids(uid), 200))
    SPAWNER.start()  # now, so that the first command pays no start-up
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    workers = spawnd.Workers()
    while True:
        line = inp.readline()
        if not line:
            return
        try:
            req = json.loads(line)
            size = int(req.get("blob") or 0)
        except (ValueError, AttributeError):
            sys.stderr.write(f"labcoat agent: ignoring a line that is not JSON: {line[:80]!r}\n")
            continue
        blob = inp.read(size) if "blob" in req else None
        workers.submit(handle, out, req, blob)


if __name__ == "__main__":
    main()
