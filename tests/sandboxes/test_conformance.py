"""The sandbox conformance suite: every backend in `BACKENDS` must pass all of it.

Real containers throughout. Probes that leave nothing behind share one sandbox per backend;
tests that need a pristine or differently-shaped sandbox make their own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labcoat.errors import UnsafeOutputError
from labcoat.sandboxes import ExecResult, Mount, Sandbox, SandboxProvider

from .conftest import BACKENDS, new_run_id

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def provider(backend: str, run: Any, docker_client: Any) -> Iterator[Any]:
    prov = BACKENDS[backend](new_run_id(backend))
    run(prov.start())
    yield prov
    run(prov.aclose())


@pytest.fixture(scope="module")
def box(provider: Any, run: Any, make_spec: Any) -> Iterator[Sandbox]:
    sandbox = run(provider.create(make_spec(provider.run_id, subtask_id="probe",
                                            env={"FROM_SPEC": "spec-value"})))
    yield sandbox
    run(sandbox.aclose())


def sh(run: Any, box: Sandbox, cmd: str, **kw: Any) -> ExecResult:
    return run(box.exec(cmd, **kw))


def test_backend_implements_the_protocols(provider: Any, box: Sandbox) -> None:
    assert isinstance(provider, SandboxProvider)
    assert isinstance(box, Sandbox)


# ---- files -------------------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    (root / "pkg" / "deep").mkdir(parents=True)
    (root / "train.py").write_text("print('hi')\n")
    (root / "pkg" / "deep" / "data.bin").write_bytes(bytes(range(256)) * 4096)
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("pkg/deep/data.bin")


def tree_listing(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_file():
            out[rel] = ("file", path.read_bytes(), path.stat().st_mode & 0o111 != 0)
        else:
            out[rel] = ("dir",)
    return out


def test_file_round_trip(run: Any, box: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    run(box.put_dir(tmp_path / "src", "/workspace/rt"))
    res = sh(run, box, "./run.sh && sha256sum pkg/deep/data.bin && cat link | wc -c",
             cwd="/workspace/rt")
    assert res.ok, res
    assert "ran" in res.stdout and "1048576" in res.stdout
    run(box.get_dir("/workspace/rt", tmp_path / "back"))
    assert tree_listing(tmp_path / "back") == tree_listing(tmp_path / "src")


def test_single_files_and_tar_route(run: Any, box: Sandbox, tmp_path: Path) -> None:
    run(box.write_file("notes/a.txt", "héllo"))
    assert run(box.read_file("/workspace/notes/a.txt")) == "héllo".encode()
    run(box.write_file("/tmp/bin.dat", bytes(range(256))))
    assert run(box.read_file("/tmp/bin.dat")) == bytes(range(256))
    make_tree(tmp_path / "src")
    run(box.put_dir(tmp_path / "src", "/tmp/tarred"))  # not a bind folder: tar through exec
    res = sh(run, box, "cat /tmp/tarred/train.py && stat -c %u /tmp/tarred/train.py")
    assert res.stdout.split("\n")[:2] == ["print('hi')", "10001"]
    with pytest.raises(FileNotFoundError):
        run(box.read_file("/workspace/does-not-exist"))


def test_read_file_size_cap(run: Any, box: Sandbox) -> None:
    sh(run, box, "head -c 2000 /dev/zero > /tmp/big")
    with pytest.raises(UnsafeOutputError, match="over the cap of 1000 bytes"):
        run(box.read_file("/tmp/big", max_bytes=1000))


def test_permissions(run: Any, box: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    run(box.put_dir(tmp_path / "src", "/workspace/perm"))
    res = sh(run, box, "stat -c '%u %A' run.sh train.py && echo more >> train.py && test -x run.sh"
                       " && touch newfile && mkdir -p d/e && id -u", cwd="/workspace/perm")
    assert res.ok, res
    lines = res.stdout.split("\n")
    assert lines[0] == "10001 -rwxr-xr-x" and lines[1].startswith("10001 -rw")
    assert lines[2] == "10001"
    other = sh(run, box, "touch /outputs/ok && echo outputs-ok; touch /grader/x 2>&1")
    assert other.stdout.startswith("outputs-ok\n") and "Read-only file system" in other.stdout


def test_identity_and_privileges(run: Any, box: Sandbox) -> None:
    res = sh(run, box, "id -u; grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status")
    uid, *status = res.stdout.strip().split("\n")
    fields = dict(line.split(":\t") for line in status)
    assert uid != "0" and uid == "10001"
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"  # the engine's default seccomp filter


def test_no_network(run: Any, box: Sandbox) -> None:
    assert sh(run, box, "ls /sys/class/net").stdout.split() == ["lo"]
    probe = ("import socket; s = socket.socket(); s.settimeout(2)\n"
             "try:\n    s.connect(('1.1.1.1', 80)); print('connected')\n"
             "except OSError as e:\n    print('refused', e.errno)")
    assert sh(run, box, f'python3 -c "{probe}"').stdout.startswith("refused")


def test_read_only_root(run: Any, box: Sandbox) -> None:
    res = sh(run, box, "touch /usr/evil 2>&1; touch /home/labcoat/x 2>&1; awk '$2 == \"/\"' "
                       "/proc/self/mounts; touch /tmp/fine /workspace/f && echo writable")
    assert res.stdout.count("Read-only file system") == 2
    root_mount = next(line for line in res.stdout.split("\n") if line.startswith("overlay /"))
    assert root_mount.split()[3].split(",")[0] == "ro"
    assert "writable" in res.stdout


def test_no_docker_socket(run: Any, box: Sandbox) -> None:
    res = sh(run, box, "ls -la /var/run/docker.sock /run/docker.sock 2>&1; env | grep -i docker;"
                       " grep -c docker.sock /proc/mounts")
    assert res.stdout.count("No such file or directory") == 2
    assert "DOCKER_HOST" not in res.stdout
    assert res.stdout.strip().endswith("0")


def test_env_isolation(run: Any, provider: Any, make_spec: Any,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    canaries = {"OPENAI_API_KEY": "sk-canary-1f2e3d4c5b6a", "MY_TOKEN": "canary",
                "AWS_SECRET_ACCESS_KEY": "canary-aws-0099"}
    for key, value in canaries.items():
        monkeypatch.setenv(key, value)
    spec = make_spec(provider.run_id, subtask_id="env", env={"LABCOAT_SEED": "7"})

    async def probe() -> tuple[ExecResult, ExecResult]:
        async with await provider.create(spec) as fresh:
            every = await fresh.exec("env; cat /proc/[0-9]*/environ | tr '\\0' '\\n'")
            merged = await fresh.exec("echo $LABCOAT_SEED $EXTRA", env={"EXTRA": "x"})
            return every, merged

    every, merged = run(probe())
    for key, value in canaries.items():
        assert value not in every.stdout and key not in every.stdout
    assert "LABCOAT_SEED=7" in every.stdout
    assert merged.stdout.strip() == "7 x"


def test_cwd(run: Any, box: Sandbox) -> None:
    assert sh(run, box, "pwd").stdout.strip() == "/workspace"
    assert sh(run, box, "pwd", cwd="/tmp").stdout.strip() == "/tmp"
    sh(run, box, "mkdir -p sub")
    assert sh(run, box, "pwd", cwd="sub").stdout.strip() == "/workspace/sub"
    missing = sh(run, box, "pwd", cwd="/nope")
    assert missing.returncode != 0 and not missing.timed_out


def test_stdin(run: Any, box: Sandbox) -> None:
    assert sh(run, box, "cat", stdin="hello\nworld").stdout == "hello\nworld"
    blob = os.urandom(3 << 20)
    res = sh(run, box, "sha256sum | cut -c1-64", stdin=blob)
    import hashlib

    assert res.stdout.strip() == hashlib.sha256(blob).hexdigest()
    assert sh(run, box, "cat | wc -c").stdout.strip() == "0"  # no stdin: empty, never a hang


def test_exit_codes_and_argv(run: Any, box: Sandbox) -> None:
    res = sh(run, box, "echo out; echo err >&2; exit 3")
    assert (res.returncode, res.stdout, res.stderr, res.ok) == (3, "out\n", "err\n", False)
    argv = run(box.exec(["printf", "%s|", "a b", "$HOME", "c"]))
    assert argv.stdout == "a b|$HOME|c|"
    assert run(box.exec(["/no/such/binary"])).returncode in (126, 127)


def test_spec_env_reaches_commands(run: Any, box: Sandbox) -> None:
    assert sh(run, box, "echo $FROM_SPEC").stdout.strip() == "spec-value"
    assert sh(run, box, "echo $FROM_SPEC", env={"FROM_SPEC": "call"}).stdout.strip() == "call"


def gone_within(run: Any, box: Sandbox, marker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if marker not in sh(run, box, "ps -eo args").stdout:
            return True
        time.sleep(0.2)
    return False


def test_timeout_kills_the_whole_tree(run: Any, box: Sandbox) -> None:
    marker = f"marker-{os.urandom(4).hex()}"
    cmd = (f"python3 -c 'import time; time.sleep(600)' {marker}-child & "
           f"setsid python3 -c 'import time; time.sleep(600)' {marker}-daemon & "
           f"sleep 0.3; ps -eo args | grep -c {marker}; sleep 600")
    start = time.monotonic()
    res = sh(run, box, cmd, timeout_s=1.5)
    assert res.timed_out and not res.ok
    assert res.returncode == 137
    assert time.monotonic() - start < 6
    assert int(res.stdout.split()[0]) >= 2  # both were running before the deadline
    assert gone_within(run, box, marker, 5.0)


def test_self_sigterm_is_not_a_timeout(run: Any, box: Sandbox) -> None:
    res = sh(run, box, "kill -TERM $$; sleep 5", timeout_s=10)
    assert res.returncode == 143 and not res.timed_out


def test_output_cap(run: Any, box: Any) -> None:
    cap = box.spec.output_cap_bytes
    total = 3 * cap + 12345
    body = f"'H' * {cap} + 'm' * {total - 2 * cap} + 'T' * {cap}"
    cmd = f'python3 -c "import sys; sys.stdout.write({body})"'
    res = sh(run, box, cmd)
    assert res.truncated
    dropped = total - 2 * cap
    head, tail = res.stdout.split(f"\n[... {dropped} bytes truncated ...]\n")
    assert head == "H" * cap and tail == "T" * cap
    bad = sh(run, box, "printf 'ok \\377\\376 end'; printf '\\377' >&2")
    assert bad.stdout == "ok \ufffd\ufffd end" and bad.stderr == "\ufffd"
    assert not bad.truncated


def test_oom_is_reported(run: Any, box: Sandbox) -> None:
    res = sh(run, box, "python3 -c \"a = b'x' * (2 << 30); print('survived')\"", timeout_s=60)
    assert res.oom_killed and res.returncode == 137 and not res.timed_out
    assert "survived" not in res.stdout and res.oom_kills == 0  # the command itself, no other
    after = sh(run, box, "echo still-here")
    assert after.stdout == "still-here\n" and not after.oom_killed and after.oom_kills == 0


def test_a_childs_oom_is_not_the_commands(run: Any, box: Sandbox) -> None:
    res = sh(run, box, "python3 -c \"a = b'x' * (2 << 30)\"; echo survived", timeout_s=60)
    assert res.returncode == 0 and res.ok and "survived" in res.stdout
    assert not res.oom_killed and res.oom_kills == 1
    assert "1 child process(es) OOM-killed" in res.oom_warning


def test_a_command_that_cannot_start_says_so(run: Any, box: Sandbox) -> None:
    missing = run(box.exec(["/no/such/binary"]))
    assert (missing.start_error, missing.returncode, missing.started) == ("ENOENT", 127, False)
    assert "could not start (ENOENT)" in missing.describe("/no/such/binary")
    not_executable = run(box.exec(["/etc/passwd"]))
    assert (not_executable.start_error, not_executable.returncode) == ("EACCES", 126)
    assert run(box.exec(["true"], cwd="/nope")).start_error == "ENOENT"
    ran = sh(run, box, "exit 127")  # a program's own 127 is not a failure to start
    assert ran.returncode == 127 and ran.started and ran.start_error is None


def test_file_errors_are_typed_and_name_the_file(run: Any, box: Sandbox) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        run(box.read_file("/workspace/nope.txt"))
    for folder in ("/workspace", "/etc"):
        with pytest.raises(IsADirectoryError):
            run(box.read_file(folder))
    run(box.write_file("locked/a.txt", "x"))
    sh(run, box, "chmod 000 /workspace/locked/a.txt")
    with pytest.raises(PermissionError, match=r"a\.txt"):
        run(box.read_file("/workspace/locked/a.txt"))
    with pytest.raises(PermissionError, match=r"a\.txt"):
        run(box.write_file("/workspace/locked/a.txt", "y"))
    with pytest.raises(PermissionError):  # the sandbox user's rights, whoever reads for it
        run(box.read_file("/etc/shadow"))
    run(box.write_file("/tmp/adir/f", "x"))
    with pytest.raises(IsADirectoryError):
        run(box.write_file("/tmp/adir", "y"))
    owners = sh(run, box, "stat -c %u:%g /workspace/locked /workspace/locked/a.txt /tmp/adir/f")
    assert owners.stdout.split() == ["10001:10001"] * 3


def test_pids_limit(run: Any, box: Any) -> None:
    prog = ("import os, signal, time\nkids = []\nfor _ in range(400):\n    try:\n"
            "        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    kids.append(pid)\n"
            "print(len(kids), flush=True)\nfor pid in kids:\n    os.kill(pid, signal.SIGKILL)\n"
            "for pid in kids:\n    os.waitpid(pid, 0)\n")
    res = run(box.exec(["python3", "-c", prog], timeout_s=60))
    spawned = int(res.stdout.split()[0])
    assert 10 < spawned < box.spec.pids_limit < 400
    assert sh(run, box, "echo alive").stdout == "alive\n"


DAEMONS = ("(setsid env -i sleep 2000 &); "
           "setsid sh -c 'while :; do touch churn/a; rm -f churn/a; ln -s x churn/a; "
           "rm -f churn/a; done' >/dev/null 2>&1 </dev/null &")


def test_get_dir_first_kills_what_the_commands_left_running(run: Any, box: Sandbox,
                                                             tmp_path: Path) -> None:
    sh(run, box, "mkdir -p /workspace/churn && echo kept > /workspace/churn/k")
    sh(run, box, DAEMONS)
    assert "sleep 2000" in sh(run, box, "ps -eo args").stdout
    run(box.get_dir("/workspace/churn", tmp_path / "out"))  # no error, however often it runs
    # a: the loop was killed mid-way; x: a `touch` through the link `a` (seen on a loaded VM)
    assert {p.name for p in (tmp_path / "out").iterdir()} - {"a", "x"} == {"k"}
    left = sh(run, box, "ps -eo uid=,args=").stdout
    assert "sleep 2000" not in left and "churn" not in left
    sh(run, box, DAEMONS)
    killed = run(box.kill_all())
    assert killed >= 2 or killed == -1  # -1: the fallback path cannot count
    assert "sleep 2000" not in sh(run, box, "ps -eo args").stdout


def test_symlink_escape_refused(run: Any, box: Sandbox, tmp_path: Path) -> None:
    sh(run, box, "mkdir -p /workspace/esc/ok && echo fine > /workspace/esc/ok/f && "
                 "ln -s /etc/passwd /workspace/esc/abs")
    with pytest.raises(UnsafeOutputError, match="abs"):
        run(box.get_dir("/workspace/esc", tmp_path / "a"))
    sh(run, box, "rm /workspace/esc/abs && ln -s ../../../../etc /workspace/esc/ok/up")
    with pytest.raises(UnsafeOutputError, match="points outside"):
        run(box.get_dir("/workspace/esc", tmp_path / "b"))
    assert not any(p.is_symlink() and "etc" in os.readlink(p) for p in (tmp_path / "b").rglob("*"))
    sh(run, box, "rm /workspace/esc/ok/up && ln -s /etc /workspace/esc/dirlink")
    with pytest.raises(UnsafeOutputError):
        run(box.get_dir("/workspace/esc/dirlink/ssl", tmp_path / "c"))
    sh(run, box, "rm /workspace/esc/dirlink && mkfifo /workspace/esc/pipe")
    with pytest.raises(UnsafeOutputError, match="FIFO"):
        run(box.get_dir("/workspace/esc", tmp_path / "d"))
    sh(run, box, "rm /workspace/esc/pipe && ln -s ok/f /workspace/esc/inside")
    run(box.get_dir("/workspace/esc", tmp_path / "e"))
    assert (tmp_path / "e" / "inside").read_text() == "fine\n"


def test_get_dir_size_caps(run: Any, box: Sandbox, tmp_path: Path) -> None:
    sh(run, box, "mkdir -p /workspace/big && head -c 300000 /dev/zero > /workspace/big/a && "
                 "head -c 300000 /dev/zero > /workspace/big/b")
    with pytest.raises(UnsafeOutputError, match="per-file cap of 100000"):
        run(box.get_dir("/workspace/big", tmp_path / "x", max_file_bytes=100000))
    with pytest.raises(UnsafeOutputError, match="cap of 500000"):
        run(box.get_dir("/workspace/big", tmp_path / "y", max_bytes=500000))
    run(box.get_dir("/workspace/big", tmp_path / "z", max_bytes=700000))


def test_read_only_mount(run: Any, provider: Any, make_spec: Any, tmp_path: Path) -> None:
    (tmp_path / "grader").mkdir()
    (tmp_path / "grader" / "labels.csv").write_text("1,2,3\n")
    spec = make_spec(provider.run_id, subtask_id="eval",
                     mounts=(Mount(source=tmp_path / "grader", target="/grader"),))

    async def probe() -> ExecResult:
        async with await provider.create(spec) as fresh:
            return await fresh.exec("cat /grader/labels.csv; touch /grader/x 2>&1 || true")

    res = run(probe())
    assert res.stdout.startswith("1,2,3\n") and "Read-only file system" in res.stdout
    assert sorted(p.name for p in (tmp_path / "grader").iterdir()) == ["labels.csv"]


def test_cleanup_leaves_nothing(run: Any, backend: str, make_spec: Any, docker_client: Any,
                                ) -> None:
    provider = BACKENDS[backend](new_run_id("cleanup"))
    fresh = run(provider.create(make_spec(provider.run_id, subtask_id="gone")))
    scratch = fresh.scratch
    assert scratch.exists()
    run(fresh.aclose())
    run(fresh.aclose())  # idempotent
    assert not scratch.exists()
    assert docker_client.api.containers(all=True, filters={"id": fresh.id}) == []
    extra = [run(provider.create(make_spec(provider.run_id))) for _ in range(2)]
    assert run(provider.cleanup(provider.run_id)) == 2
    for gone in extra:
        assert docker_client.api.containers(all=True, filters={"id": gone.id}) == []
    kept = run(provider.create(make_spec(provider.run_id)))
    run(provider.aclose())  # the exit path removes what is still open
    assert docker_client.api.containers(all=True, filters={"id": kept.id}) == []
    assert not kept.scratch.exists()
