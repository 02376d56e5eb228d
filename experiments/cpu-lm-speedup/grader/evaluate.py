"""Time the candidate's training against the baseline's, under the grader's own clock.

Run as `python3 -I /grader/evaluate.py` in /workspace (the candidate's code). Nothing the
candidate prints or writes about its own time or loss is read. What the grader does:

1. Draws a secret substitution cipher (a random permutation of the alphabet, from os.urandom,
   never written anywhere) and writes its own training text through it to data/train.txt of
   the baseline's folder and of the candidate's. That text (grader/train.txt) is not the
   workspace's data/train.txt: the two halves of the book are disjoint, so a candidate cannot
   line up a plain copy with the enciphered one to read the key. A model trained, cached or
   smuggled in beforehand knows the wrong alphabet: its held-out loss is hopeless.
2. Trains the baseline (grader/baseline/train.py, default parameters) and then the candidate,
   each in a new session with a clean environment, under Landlock: the training reads its
   staged copy of the code and the system, never /grader (the plain texts), /workspace or
   /outputs. (A model the `run` step left in the copy was trained on the plain workspace
   text: it is a cached model, see 1.) Measures each training itself: the CPU time the
   whole sandbox spent (its cgroup's counter: every process counts, background ones included,
   and other work on the machine does not move it) and the wall time. After each, every other
   process of the sandbox user is killed before the model file is read, so work forked into
   the background cannot finish a model after the clock stopped; the baseline's folder (its
   fresh model) is deleted before the candidate starts.
3. Scores outputs/model.npz (read as data, never unpickled) on held-out text that only
   /grader has, enciphered with the same key only after the candidate is gone.

speedup = baseline CPU time / candidate CPU time when the candidate's held-out loss is within
TARGET_LOSS, else 0. Last stdout line: the metrics as one JSON object.
"""

import ctypes
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GRADER = Path("/grader")
TARGET_LOSS = 1.72
"""Held-out nats per character a candidate must reach (the baseline reaches about 1.67)."""
MAX_CONTEXT = 64
"""Held-out characters are predicted from position 64 on, whatever a model's context."""
MAX_MODEL_BYTES = 64 << 20
TIME_LIMIT_FACTOR, TIME_LIMIT_FLOOR_S = 4.0, 60.0
"""The candidate may train for 4 x the baseline's wall time (at least 60 s)."""
LOG_CAP = 4000


HIDDEN = ("grader", "workspace", "outputs")
"""Top-level folders the candidate's training may not read (Landlock): the grader's files, and
the outputs of the `run` step (the timed run gets the code, not what `run` left)."""
LANDLOCK_READ = (1 << 2) | (1 << 3)  # LANDLOCK_ACCESS_FS_READ_FILE | READ_DIR
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446


def landlock_reads(allowed: list[str]) -> None:
    """From now on this process and its children may read files only beneath `allowed`.

    Landlock (Linux 5.13+) needs no privilege: the grader applies it to the candidate's
    training between fork and exec. Written with ctypes because the sandbox image has no
    Landlock binding; the structures are the kernel's (include/uapi/linux/landlock.h).
    Raises OSError when the kernel or seccomp refuses, so the grader fails closed."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    attr = ctypes.c_uint64(LANDLOCK_READ)  # struct landlock_ruleset_attr, handled_access_fs
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    for path in allowed:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rule = struct.pack("=Qi", LANDLOCK_READ, fd)  # landlock_path_beneath_attr, packed
        if libc.syscall(SYS_ADD_RULE, ruleset, 1, rule, 0) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
        os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) < 0 or libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


def readable_roots() -> list[str]:
    """Every top-level folder but HIDDEN: the system, Python, numpy, /tmp (the staged code)."""
    return [f"/{name}" for name in sorted(os.listdir("/"))
            if name not in HIDDEN and os.path.isdir(f"/{name}")]


def hide_memory() -> None:
    """No process of the same user may read this one's memory (the cipher key lives there)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


def draw_cipher(alphabet: list[str]) -> dict[str, str]:
    shuffled = list(alphabet)
    random.SystemRandom().shuffle(shuffled)
    return dict(zip(alphabet, shuffled))


def encipher(text: str, key: dict[str, str]) -> str:
    return text.translate(str.maketrans(key))


def cpu_ns() -> int | None:
    """CPU time of every process in this sandbox so far (cgroup v2, then v1), or None."""
    try:
        for line in Path("/sys/fs/cgroup/cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) * 1000
    except (OSError, ValueError):
        pass
    try:
        return int(Path("/sys/fs/cgroup/cpuacct/cpuacct.usage").read_text())
    except (OSError, ValueError):
        return None


def ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")))
    return pids


def kill_others() -> None:
    """SIGKILL every process of this user but this one and its ancestors, until none is left."""
    keep, uid = ancestors(), os.getuid()
    for _ in range(100):
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in keep:
                continue
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def train_env(seed: str) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "LABCOAT_SEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))
    return env


def timed_training(folder: Path, seed: str, limit_s: float | None) -> dict:
    """Run `python3 train.py` in `folder`; the grader's measurements and the model it left."""
    shutil.rmtree(folder / "outputs", ignore_errors=True)
    log = folder.parent / f"{folder.name}.log"
    roots = readable_roots()
    cpu0, wall0 = cpu_ns(), time.perf_counter()
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen([sys.executable, "train.py"], cwd=folder,
                                    env=train_env(seed), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=lambda: landlock_reads(roots))
        except subprocess.SubprocessError as err:
            sys.exit(f"the grader cannot hide /grader from the training it times ({err}): "
                     "this kernel or its seccomp profile refuses Landlock (Linux 5.13+)")
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            code = None
        wall = time.perf_counter() - wall0
        kill_others()
        proc.wait()
    cpu1 = cpu_ns()
    cpu = (cpu1 - cpu0) / 1e9 if cpu0 is not None and cpu1 is not None else None
    result = {"wall_s": wall, "cpu_s": cpu, "exit": code, "log": tail(log)}
    result["model"] = read_model(folder / "outputs" / "model.npz")
    # Gone before the next training starts: the baseline's fresh model is no one's to copy.
    shutil.rmtree(folder, ignore_errors=True)
    log.unlink()
    return result


def tail(path: Path) -> str:
    data = path.read_bytes()[-LOG_CAP:]
    return data.decode("utf-8", "replace")


def read_model(path: Path) -> dict | str:
    """The arrays of model.npz, or why there are none (a regular file, as data only)."""
    try:
        info = os.lstat(path)
    except OSError:
        return "no outputs/model.npz"
    if not path.is_file() or path.is_symlink() or info.st_size > MAX_MODEL_BYTES:
        return "outputs/model.npz is not a regular file under 64 MB"
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as err:  # noqa: BLE001 - the candidate wrote it: any failure is its own
        return f"outputs/model.npz cannot be read: {type(err).__name__}: {err}"


def layers(model: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    out, i = [], 0
    while f"W{i}" in model:
        out.append((np.asarray(model[f"W{i}"], float), np.asarray(model[f"b{i}"], float)))
        i += 1
    return out


def check_shapes(model: dict) -> str | None:
    need = {"vocab", "emb", "W0", "b0", "W_out", "b_out"}
    if not need <= set(model):
        return f"model.npz lacks {sorted(need - set(model))}"
    vocab, emb, hidden = model["vocab"], model["emb"], layers(model)
    if emb.ndim != 2 or vocab.ndim != 1 or len(vocab) != emb.shape[0]:
        return "emb must be [len(vocab), d]"
    width = hidden[0][0].shape[0]
    if width % emb.shape[1] or not 1 <= width // emb.shape[1] <= MAX_CONTEXT:
        return f"W0 must have context*d rows (d={emb.shape[1]}, context at most {MAX_CONTEXT})"
    for w, b in hidden + [(model["W_out"], model["b_out"])]:
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            return "each W_i must take the previous layer's width and match its b_i"
        width = w.shape[1]
    if width != len(vocab):
        return "W_out must end in one logit per vocabulary entry"
    return None


def heldout_loss(model: dict, text: str) -> tuple[float, str | None]:
    """Mean nats per character on `text` (positions MAX_CONTEXT on), or inf and why."""
    bad = check_shapes(model)
    if bad is not None:
        return float("inf"), bad
    index = {int(c): i for i, c in enumerate(model["vocab"])}
    missing = sorted({c for c in text if ord(c) not in index})
    if missing:
        return float("inf"), f"the model's vocabulary lacks {len(missing)} character(s)"
    ids = np.array([index[ord(c)] for c in text])
    emb = np.asarray(model["emb"], float)
    k = layers(model)[0][0].shape[0] // emb.shape[1]
    pos = np.arange(MAX_CONTEXT, len(ids))
    h = emb[ids[pos[:, None] - k + np.arange(k)]].reshape(len(pos), -1)
    for w, b in layers(model):
        h = np.tanh(h @ w + b)
    logits = h @ np.asarray(model["W_out"], float) + np.asarray(model["b_out"], float)
    if not np.isfinite(logits).all():
        return float("inf"), "the model's outputs are not finite"
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(pos)), ids[pos]].mean()), None


def stage(folder: Path, code_from: Path, train_text: str) -> None:
    shutil.copytree(code_from, folder, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("outputs", "data"))
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "train.txt").write_text(train_text)


def main() -> None:
    hide_memory()
    seed = os.environ.get("LABCOAT_SEED", "0")
    train_text = (GRADER / "train.txt").read_text()
    heldout = (GRADER / "heldout.txt").read_text()
    key = draw_cipher(sorted(set(train_text) | set(heldout)))
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"lm-grade-{os.getpid()}"
    stage(scratch / "baseline", GRADER / "baseline", encipher(train_text, key))
    stage(scratch / "candidate", Path.cwd(), encipher(train_text, key))
    kill_others()  # nothing left by the run step (there should be nothing) shares the clock
    base = timed_training(scratch / "baseline", seed, None)
    limit = max(TIME_LIMIT_FLOOR_S, TIME_LIMIT_FACTOR * base["wall_s"])
    cand = timed_training(scratch / "candidate", seed, limit)
    text = encipher(heldout, key)
    report(base, cand, text, limit)


def score(run: dict, text: str) -> tuple[float, str | None]:
    if isinstance(run["model"], str):
        return float("inf"), run["model"]
    return heldout_loss(run["model"], text)


def report(base: dict, cand: dict, text: str, limit: float) -> None:
    base_loss, base_err = score(base, text)
    if base["exit"] != 0 or base_err:
        print(f"the baseline failed: {base_err or base['log']}", file=sys.stderr)
        sys.exit(1)
    loss, err = score(cand, text)
    if cand["exit"] is None:
        err = f"training took longer than {limit:.0f} s and was stopped"
    elif cand["exit"] != 0:
        err = f"training exited with {cand['exit']}: {cand['log'][-800:]}"
    clock = "cpu_s" if base["cpu_s"] and cand["cpu_s"] else "wall_s"
    raw = base[clock] / max(cand[clock], 1e-9)
    ok = err is None and loss <= TARGET_LOSS
    if err:
        print(f"candidate: {err}", file=sys.stderr)
    elif not ok:
        print(f"candidate: held-out loss {loss:.4f} is above the target {TARGET_LOSS}",
              file=sys.stderr)
    print(f"clock: {clock}; baseline {base[clock]:.2f} s (wall {base['wall_s']:.2f} s), "
          f"candidate {cand[clock]:.2f} s (wall {cand['wall_s']:.2f} s)",
          file=sys.stderr)
    metrics = {"speedup": round(raw if ok else 0.0, 4), "raw_speedup": round(raw, 4),
               "wall_speedup": round(base["wall_s"] / max(cand["wall_s"], 1e-9), 4),
               "loss": round(loss, 5) if np.isfinite(loss) else 99.0,
               "baseline_loss": round(base_loss, 5), "target_loss": TARGET_LOSS,
               "train_s": round(cand[clock], 3), "baseline_train_s": round(base[clock], 3)}
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
