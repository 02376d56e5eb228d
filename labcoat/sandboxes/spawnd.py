"""spawnd: starts the sandbox's commands for the exec agent, as the sandbox user (stdlib only).

The exec agent runs as root and must start each command as the sandbox user. Done from the agent
itself that costs a full fork of a Python process per command (a vfork child cannot change its
user safely), several milliseconds; so the agent keeps this small process, already the sandbox
user, which starts each command with `posix_spawn` (a vfork) and reports its exit. It makes
itself non-dumpable (no command can trace it or reach its descriptors), calls itself
`labcoat-spawnd` (a `pkill -f` for the interpreter passes it by) and ignores every signal it may.
A command can still SIGSTOP it (the agent continues it at once) or SIGKILL it: the agent then
kills every command process and starts another, so nothing the command did survives.

Protocol over two stream sockets. On the one whose fd is argv[1], one request at a time: a
request is a 4-byte big-endian length and a JSON object {argv, env, cwd}, sent with three fds
(stdin, stdout, stderr); the answer, on the same socket, is a JSON line {"pid": n} or {"errno":
name, "error": text}. On the one whose fd is argv[2], when a command ends, a JSON line {"exit":
pid, "code": returncode (negative: killed by that signal)}. Two sockets, so that the thread that
asked reads its answer itself, without a hand-over between threads.

The same source is the agent's client (`Spawner`, `Child`) and its request threads (`Workers`):
execd loads it from its argv.
"""

import contextlib
import ctypes
import errno
import json
import os
import queue
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

PR_SET_NAME, PR_SET_DUMPABLE = 15, 4
IGNORED = tuple(sig for sig in signal.valid_signals()
                if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD))
"""What spawnd ignores (so a command's `kill $PPID` does nothing); commands get the defaults."""


def harden() -> None:
    # first: once non-dumpable, this process's /proc files belong to root
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("500")  # commands inherit it: the OOM killer's first choice, not labcoat's
    libc = ctypes.CDLL(None)
    libc.prctl(PR_SET_DUMPABLE, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
               ctypes.c_ulong(0))
    libc.prctl(PR_SET_NAME, b"labcoat-spawnd", ctypes.c_ulong(0), ctypes.c_ulong(0),
               ctypes.c_ulong(0))
    for sig in IGNORED:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN)


def receive(sock: socket.socket) -> "tuple[dict, list[int]] | None":
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    if not data:
        return None
    for fd in fds:  # the command gets them as 0, 1, 2 only (dup2 clears close-on-exec there)
        os.set_inheritable(fd, False)
    size = struct.unpack("!I", data[:4])[0]
    while len(data) < 4 + size:
        more = sock.recv(4 + size - len(data))
        if not more:
            return None
        data += more
    return json.loads(data[4:]), list(fds)


def spawn(req: dict, fds: "list[int]") -> int:
    """Start the command in its folder (entered with this user's rights), in a new session."""
    try:
        os.chdir(req["cwd"])
        name = req["argv"][0]
        path = name if "/" in name else shutil.which(name, path=req["env"].get("PATH"))
        if path is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
        return os.posix_spawn(path, req["argv"], req["env"], setsid=True,
                              setsigdef=IGNORED,
                              file_actions=[(os.POSIX_SPAWN_DUP2, fd, i)
                                            for i, fd in enumerate(fds)])
    finally:
        for fd in fds:
            os.close(fd)


def main() -> None:
    harden()
    sock, exits = (socket.socket(fileno=int(fd)) for fd in sys.argv[1:3])
    for s in (sock, exits):
        s.set_inheritable(False)  # a command holding one could forge this process's answers
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        ready, _, _ = select.select([sock.fileno(), *children], [], [])
        for fd in ready:
            if fd != sock.fileno():
                pid = children.pop(fd)
                os.close(fd)
                code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                exits.sendall(json.dumps({"exit": pid, "code": code}).encode() + b"\n")
            elif (got := receive(sock)) is None:
                return
            else:
                sock.sendall(json.dumps(answer_spawn(*got, children)).encode() + b"\n")


def answer_spawn(req: dict, fds: list[int], children: dict[int, int]) -> dict[str, object]:
    try:
        pid = spawn(req, fds)
    except OSError as err:
        return {"errno": errno.errorcode.get(err.errno or 0, "EIO"), "error": str(err)}
    children[os.pidfd_open(pid)] = pid
    return {"pid": pid}


# ---- the client, in the exec agent ---------------------------------------------------------


class Child:
    """A command spawnd started: its pid, labcoat's ends of its pipes, and its exit when told."""

    def __init__(self, pid: int, pipes: "list[BinaryIO | None]") -> None:
        self.pid, (self.stdin, self.stdout, self.stderr) = pid, pipes
        self.returncode: int | None = None
        self.wake_r, self.wake_w = os.pipe()  # readable once the exit is known
        self.done = threading.Event()
        self.lock = threading.Lock()  # the wake-up pipe is written and closed under it
        self.closed = False

    def poll(self) -> "int | None":
        return self.returncode

    def wait(self) -> int:
        self.done.wait()
        return self.returncode if self.returncode is not None else -signal.SIGKILL

    def exited(self, code: int) -> None:
        # The waiting thread may see the code, finish and close the pipe at once: written under
        # the lock, or the byte would go to a closed pipe (EPIPE) or a reused descriptor.
        with self.lock:
            self.returncode = code
            if not self.closed:
                with contextlib.suppress(OSError):
                    os.write(self.wake_w, b"x")
        self.done.set()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for fd in (self.wake_r, self.wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)


class Workers:
    """Threads that handle requests, kept when idle (starting a thread costs about 0.1 ms, a
    hand-over to one that waits about 0.02 ms). A request never waits behind another: it goes
    to an idle thread or to a new one, since a command may run for hours."""

    KEEP_IDLE = 8

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[..., None], tuple]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        with self.lock:
            spare = self.idle > 0
            if spare:
                self.idle -= 1  # that thread is now this job's
        if not spare:
            threading.Thread(target=self._serve, daemon=True).start()
        self.jobs.put((fn, args))

    def _serve(self) -> None:
        while True:
            fn, args = self.jobs.get()
            fn(*args)
            with self.lock:
                if self.idle >= self.KEEP_IDLE:
                    return
                self.idle += 1


class Spawner:
    """execd's side: starts spawnd (again after it died), one request at a time, each exit
    routed to its `Child`. `clean()` kills every process of the sandbox user."""

    def __init__(self, source: str, uid: int, gid: int, clean: Callable[[], object]) -> None:
        self.source, self.uid, self.gid, self.clean = source, uid, gid, clean
        self.lock, self.state = threading.Lock(), threading.Lock()
        self.sock: socket.socket | None = None
        self.answers: BinaryIO | None = None  # the answers, read by the thread that asked
        self.cleaned = threading.Event()
        self.pid = 0
        self.children: dict[int, Child] = {}
        self.early: dict[int, int] = {}  # exits told before their Child was registered

    def start_command(self, argv: "list[str]", env: "dict[str, str]", cwd: str,
                      has_stdin: bool) -> Child:
        """Start `argv`; OSError (with spawnd's errno) when it could not start."""
        stdin = os.pipe() if has_stdin else (os.open(os.devnull, os.O_RDONLY), -1)
        out, err = os.pipe(), os.pipe()
        theirs, ours = [stdin[0], out[1], err[1]], [stdin[1], out[0], err[0]]
        try:
            answer = self._ask({"argv": argv, "env": env, "cwd": cwd}, theirs)
        finally:
            for fd in theirs:
                os.close(fd)
        if "pid" not in answer:
            for fd in ours:
                if fd >= 0:
                    os.close(fd)
            code = getattr(errno, answer.get("errno", "EIO"), errno.EIO)
            raise OSError(code, answer.get("error") or os.strerror(code))
        pipes: list[BinaryIO | None] = [
            os.fdopen(fd, mode) if fd >= 0 else None  # type: ignore[misc]
            for fd, mode in zip(ours, ("wb", "rb", "rb"), strict=True)]
        return self._register(Child(answer["pid"], pipes))

    def _ask(self, req: dict, fds: "list[int]") -> dict:
        body = json.dumps(req).encode()
        for _ in range(2):
            with self.lock:
                if self.sock is None:
                    self.start()
                assert self.sock is not None
                cleaned = self.cleaned
                try:
                    socket.send_fds(self.sock, [struct.pack("!I", len(body)) + body], fds)
                except OSError:
                    pass  # spawnd is dead and never got it: again once it is cleaned up
                else:
                    return self._answer()
            cleaned.wait(10.0)
        return {"errno": "EIO", "error": "labcoat's process starter could not be restarted"}

    def _answer(self) -> dict:
        assert self.answers is not None
        try:
            line = self.answers.readline()
        except (OSError, ValueError) as err:
            line = repr(err).encode()
        if not line.startswith(b"{"):  # spawnd died meanwhile: the exits reader cleans up
            return {"errno": "EIO", "error": "labcoat's process starter is gone "
                                             f"({line.decode(errors='replace') or 'EOF'})"}
        answer: dict = json.loads(line)
        return answer

    def start(self) -> None:
        """spawnd as the sandbox user (the one full fork it costs); nothing of that user may
        be alive meanwhile, to race its start-up (before it is non-dumpable)."""
        self.clean()
        (ours, theirs), (exits, their_exits) = socket.socketpair(), socket.socketpair()
        proc = subprocess.Popen(
            ["labcoat-spawnd", "-I", "-c", self.source, str(theirs.fileno()),
             str(their_exits.fileno())],
            executable=sys.executable, user=self.uid, group=self.gid, extra_groups=[],
            pass_fds=[theirs.fileno(), their_exits.fileno()], cwd="/",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        theirs.close()
        their_exits.close()
        self.sock, self.answers, self.pid = ours, ours.makefile("rb"), proc.pid
        self.cleaned = threading.Event()  # set once this spawnd's death is dealt with
        threading.Thread(target=self._read, args=(ours, exits, proc, self.cleaned),
                         daemon=True).start()
        threading.Thread(target=self._keep_running, args=(proc,), daemon=True).start()

    @staticmethod
    def _keep_running(proc: subprocess.Popen[bytes]) -> None:
        """A command may SIGSTOP spawnd (same user; the one signal it cannot ignore but
        SIGKILL): continue it at once, so no exit goes unreported for long."""
        while proc.poll() is None:
            with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t"):
                    os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.1)

    def _register(self, child: Child) -> Child:
        with self.state:
            self.children[child.pid] = child
            code = self.early.pop(child.pid, None)
        if code is not None:
            child.exited(code)
        return child

    def _read(self, sock: socket.socket, exits: socket.socket,
              proc: "subprocess.Popen[bytes]", cleaned: threading.Event) -> None:
        """Route each exit to its command, until spawnd is gone."""
        with contextlib.suppress(OSError, ValueError):
            for line in exits.makefile("rb"):
                msg = json.loads(line)
                self._exited(msg["exit"], msg["code"])
        self._lost(sock, proc)
        exits.close()
        cleaned.set()

    def _exited(self, pid: int, code: int) -> None:
        with self.state:
            child = self.children.pop(pid, None)
            if child is None:
                self.early[pid] = code
        if child is not None:
            child.exited(code)

    def _lost(self, sock: socket.socket, proc: "subprocess.Popen[bytes]") -> None:
        """spawnd died (a process of the sandbox user killed it): its commands' exits are
        unknown, so they are killed and reported killed; the next command starts a new one.
        A thread waiting for an answer meanwhile gets end-of-file from the dead spawnd."""
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        with self.lock:  # no new spawnd meanwhile
            with self.state:
                lost, self.children = list(self.children.values()), {}
                if self.sock is sock:
                    self.sock = None
                    if self.answers is not None:
                        self.answers.close()
                    self.answers = None
            self.clean()
        for child in lost:
            child.exited(-signal.SIGKILL)
        sock.close()


if __name__ == "__main__":
    main()
