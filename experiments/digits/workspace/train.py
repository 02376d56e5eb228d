"""Train a digit classifier and write predictions for the test features.

Parameters come from params.json (written by labcoat's engineer role) or LABCOAT_PARAM_* variables;
the seed from LABCOAT_SEED. Predictions go to outputs/predictions.json for the grader.
"""

import json
import os
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

# The baseline: logistic regression on standardised pixels with scikit-learn's own defaults
# (C=1.0). The other models and values are what the search may try.
DEFAULTS = {"model": "logistic", "C": 1.0, "gamma": 0.01, "n_estimators": 100, "max_depth": 32}


def load_params() -> dict:
    params = dict(DEFAULTS)
    if Path("params.json").exists():
        params.update(json.loads(Path("params.json").read_text()))
    for key in DEFAULTS:
        env = os.environ.get(f"LABCOAT_PARAM_{key.upper()}")
        if env is not None:
            params[key] = type(DEFAULTS[key])(env)
    return params


def build(params: dict, seed: int):
    if params["model"] == "svm":
        return make_pipeline(StandardScaler(), SVC(C=params["C"], gamma=params["gamma"]))
    if params["model"] == "random_forest":
        return RandomForestClassifier(
            n_estimators=int(params["n_estimators"]), max_depth=int(params["max_depth"]),
            random_state=seed, n_jobs=1,
        )
    return make_pipeline(StandardScaler(), LogisticRegression(C=params["C"], max_iter=1000))


def main() -> None:
    seed = int(os.environ.get("LABCOAT_SEED", "0"))
    params = load_params()
    train = np.load("data/train.npz")
    test = np.load("data/test_features.npz")
    model = build(params, seed).fit(train["X"], train["y"])
    Path("outputs").mkdir(exist_ok=True)
    predictions = model.predict(test["X"]).astype(int).tolist()
    Path("outputs/predictions.json").write_text(json.dumps(predictions))
    print(f"trained {params['model']} with {params} (seed {seed}); wrote {len(predictions)} predictions")


if __name__ == "__main__":
    main()
