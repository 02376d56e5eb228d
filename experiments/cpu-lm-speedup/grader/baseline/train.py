"""Train a character-level language model in numpy; write outputs/model.npz.

The model: each character is predicted from the `context` characters before it. They are
embedded (`embed` numbers each), concatenated, passed through one tanh layer of `hidden` units
and a softmax over the vocabulary. Trained with Adam on random windows of data/train.txt,
`batch_size` windows per step, until `examples` windows have been seen.

The grader re-runs this script under its own clock on training text of its own (not this
data/train.txt), re-encoded with a secret cipher, then scores outputs/model.npz on held-out
text only it has. So the file format is the contract:

    vocab    int32 [V]          the characters, as code points, in index order
    emb      float [V, d]       one row per character
    W0, b0   float [k*d, h], [h]   hidden layer (tanh); k = W0.shape[0] // d is the context
    W1, b1   ...                more tanh layers, optional
    W_out, b_out  float [h, V], [V]   logits

Parameters come from params.json (written by labcoat's engineer role) or LABCOAT_PARAM_*
variables; the seed from LABCOAT_SEED.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

DEFAULTS = {"context": 8, "embed": 16, "hidden": 256, "batch_size": 32, "lr": 0.002,
            "examples": 96000, "dtype": "float64"}


def load_params() -> dict:
    params = dict(DEFAULTS)
    if Path("params.json").exists():
        params.update(json.loads(Path("params.json").read_text()))
    for key in DEFAULTS:
        env = os.environ.get(f"LABCOAT_PARAM_{key.upper()}")
        if env is not None:
            params[key] = type(DEFAULTS[key])(json.loads(env) if key != "dtype" else env)
    return params


def init(vocab: int, p: dict, rng: np.random.Generator) -> dict:
    k, d, h = int(p["context"]), int(p["embed"]), int(p["hidden"])
    dtype = np.dtype(p["dtype"])
    shapes = {"emb": (vocab, d), "W0": (k * d, h), "b0": (h,), "W_out": (h, vocab),
              "b_out": (vocab,)}
    model = {}
    for name, shape in shapes.items():
        scale = 0.0 if name.startswith("b") else (1.0 if name == "emb" else shape[0] ** -0.5)
        model[name] = (rng.standard_normal(shape) * scale).astype(dtype)
    return model


def forward_backward(model: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """Mean cross-entropy of predicting y from the windows x, and its gradients."""
    n, k = x.shape
    e = model["emb"][x].reshape(n, -1)
    h = np.tanh(e @ model["W0"] + model["b0"])
    logits = h @ model["W_out"] + model["b_out"]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(n), y]).mean()
    dlogits = probs
    dlogits[np.arange(n), y] -= 1
    dlogits /= n
    grads = {"W_out": h.T @ dlogits, "b_out": dlogits.sum(axis=0)}
    dh = (dlogits @ model["W_out"].T) * (1 - h * h)
    grads["W0"], grads["b0"] = e.T @ dh, dh.sum(axis=0)
    de = (dh @ model["W0"].T).reshape(n, k, -1)
    demb = np.zeros_like(model["emb"])
    np.add.at(demb, x, de)
    grads["emb"] = demb
    return float(loss), grads


def windows(ids: np.ndarray, starts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = ids[starts[:, None] + np.arange(k)]
    return x, ids[starts + k]


def train(ids: np.ndarray, vocab: int, p: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    model = init(vocab, p, rng)
    k, batch, lr = int(p["context"]), int(p["batch_size"]), float(p["lr"])
    m = {n: np.zeros_like(w) for n, w in model.items()}
    v = {n: np.zeros_like(w) for n, w in model.items()}
    steps = max(1, int(p["examples"]) // batch)
    for step in range(1, steps + 1):
        x, y = windows(ids, rng.integers(0, len(ids) - k, batch), k)
        loss, grads = forward_backward(model, x, y)
        for n, g in grads.items():  # Adam
            m[n] = 0.9 * m[n] + 0.1 * g
            v[n] = 0.999 * v[n] + 0.001 * g * g
            mhat, vhat = m[n] / (1 - 0.9 ** step), v[n] / (1 - 0.999 ** step)
            model[n] -= lr * mhat / (np.sqrt(vhat) + 1e-8)
        if step % 500 == 0:
            print(f"step {step}/{steps} train loss {loss:.3f}", flush=True)
    return model


def validation_loss(model: dict, ids: np.ndarray, k: int) -> float:
    x, y = windows(ids, np.arange(len(ids) - k), k)
    return forward_backward(model, x, y)[0]


def main() -> None:
    seed = int(os.environ.get("LABCOAT_SEED", "0"))
    params = load_params()
    text = Path("data/train.txt").read_text()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    split = int(len(ids) * 0.95)  # the last 5% to watch progress; the grader has its own text
    start = time.perf_counter()
    model = train(ids[:split], len(chars), params, seed)
    took = time.perf_counter() - start
    Path("outputs").mkdir(exist_ok=True)
    np.savez("outputs/model.npz", vocab=np.array([ord(c) for c in chars], dtype=np.int32),
             **model)
    val = validation_loss(model, ids[split:], int(params["context"]))
    print(f"trained in {took:.2f} s; validation loss {val:.4f} nats/char; params {params}")


if __name__ == "__main__":
    main()
