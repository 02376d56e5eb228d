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
request is a 4-byte big-endian length and a JSON object {argv, env, cwd}, sent with four fds
(stdin, stdout, stderr, and the write end of the command's exit pipe); the answer, on the same
socket, is a JSON line {"pid": n} or {"errno": name, "error": text}, read by the thread that
asked. When the command ends, spawnd writes its return code (negative: killed by that signal) in
ASCII to its exit pipe and closes it, so the thread that runs the command learns it without a
hand-over between threads; a pipe that ends without a code means spawnd died. The socket whose fd
is argv[2] carries nothing: its end-of-file tells the agent that spawnd is gone.

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
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
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
        # posix_spawnp searches the PATH of this process's environment, in C: the command's
        os.environ["PATH"] = req["env"].get("PATH") or os.defpath
        return os.posix_spawnp(req["argv"][0], req["argv"], req["env"], setsid=True,
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
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, its exit pipe)
    poller = select.poll()  # not select(): two descriptors per command may pass 1024
    poller.register(sock.fileno(), select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd != sock.fileno():
                poller.unregister(fd)
                pid, told = children.pop(fd)
                os.close(fd)
                code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                with contextlib.suppress(OSError):  # the agent stopped listening: EPIPE
                    os.write(told, b"%d" % code)
                os.close(told)
            elif (got := receive(sock)) is None:
                return
            else:
                answer, pidfd, child = answer_spawn(*got)
                if child is not None:
                    children[pidfd] = child
                    poller.register(pidfd, select.POLLIN)
                sock.sendall(json.dumps(answer).encode() + b"\n")


def answer_spawn(req: dict, fds: list[int],
                 ) -> "tuple[dict[str, object], int, tuple[int, int] | None]":
    """The answer, and for a started command its pidfd, pid and exit pipe."""
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return {"errno": "EINVAL", "error": f"{len(fds)} descriptors came, not 4"}, -1, None
    try:
        pid = spawn(req, fds[:3])
    except OSError as err:
        os.close(fds[3])
        return {"errno": errno.errorcode.get(err.errno or 0, "EIO"), "error": str(err)}, -1, None
    return {"pid": pid}, os.pidfd_open(pid), (pid, fds[3])


# ---- the client, in the exec agent ---------------------------------------------------------


class Child:
    """A command spawnd started: its pid, labcoat's ends of its pipes, and the read end of its
    exit pipe (`exit_r`: readable once spawnd wrote the code, or died). Used by one thread."""

    def __init__(self, pid: int, pipes: "list[BinaryIO | None]", exit_r: int,
                 cleaned: threading.Event) -> None:
        self.pid, (self.stdin, self.stdout, self.stderr) = pid, pipes
        self.exit_r, self.cleaned = exit_r, cleaned
        os.set_blocking(exit_r, False)
        self.returncode: int | None = None

    def poll(self) -> "int | None":
        if self.returncode is None and self.exit_r >= 0:
            try:
                told = os.read(self.exit_r, 32)
            except BlockingIOError:
                return None
            if told.lstrip(b"-").isdigit():
                self.returncode = int(told)
            else:  # spawnd died first: its commands are killed (wait for it) and count as such
                self.cleaned.wait(10.0)
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            select.select([self.exit_r], [], [])
        return self.returncode if self.returncode is not None else -signal.SIGKILL

    def close(self) -> None:
        if self.exit_r >= 0:
            os.close(self.exit_r)
            self.exit_r = -1


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
    """execd's side: starts spawnd (again after it died), one request at a time. `clean()` kills
    every process of the sandbox user."""

    def __init__(self, source: str, uid: int, gid: int, clean: Callable[[], object]) -> None:
        self.source, self.uid, self.gid, self.clean = source, uid, gid, clean
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.answers: BinaryIO | None = None  # the answers, read by the thread that asked
        self.cleaned = threading.Event()
        self.pid = 0

    def start_command(self, argv: "list[str]", env: "dict[str, str]", cwd: str,
                      has_stdin: bool) -> Child:
        """Start `argv`; OSError (with spawnd's errno) when it could not start."""
        stdin = os.pipe() if has_stdin else (os.open(os.devnull, os.O_RDONLY), -1)
        out, err, told = os.pipe(), os.pipe(), os.pipe()
        theirs, ours = [stdin[0], out[1], err[1], told[1]], [stdin[1], out[0], err[0], told[0]]
        try:
            answer, cleaned = self._ask({"argv": argv, "env": env, "cwd": cwd}, theirs)
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
            for fd, mode in zip(ours[:3], ("wb", "rb", "rb"), strict=True)]
        return Child(answer["pid"], pipes, ours[3], cleaned)

    def _ask(self, req: dict, fds: "list[int]") -> "tuple[dict, threading.Event]":
        """spawnd's answer, and the event set once that spawnd's death is dealt with."""
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
                    return self._answer(), cleaned
            cleaned.wait(10.0)
        gone = "labcoat's process starter could not be restarted"
        return {"errno": "EIO", "error": gone}, cleaned

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

    def _read(self, sock: socket.socket, exits: socket.socket,
              proc: "subprocess.Popen[bytes]", cleaned: threading.Event) -> None:
        """Wait for spawnd's end (nothing comes on `exits` but its end-of-file), then clean up."""
        with contextlib.suppress(OSError):
            while exits.recv(64):
                pass
        self._lost(sock, proc)
        exits.close()
        cleaned.set()

    def _lost(self, sock: socket.socket, proc: "subprocess.Popen[bytes]") -> None:
        """spawnd died (a process of the sandbox user killed it): its commands' exits are
        unknown, so they are killed, and reported killed once that is done (`Child.poll`); the
        next command starts a new spawnd. A thread waiting for an answer meanwhile gets
        end-of-file from the dead spawnd."""
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        with self.lock:  # no new spawnd meanwhile
            if self.sock is sock:
                self.sock = None
                if self.answers is not None:
                    self.answers.close()
                self.answers = None
            self.clean()
        sock.close()


if __name__ == "__main__":
    main()
