"""Reproduce Table 2 of "Random features are enough for handwritten digits" (PAPER.md).

Trains the two models of Table 2 on the training split and writes their predictions for the
test features to outputs/predictions.json:

    linear   logistic regression on the raw pixels (row 1)
    rff      random Fourier features (an RBF kernel approximation, D components) followed by
             logistic regression (row 2, the paper's method)

The random features depend on the seed: `--seed`, or LABCOAT_SEED when labcoat runs it.
Accuracy is computed by whoever holds the test labels; this script never sees them.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
from sklearn.kernel_approximation import RBFSampler
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

# Where prepare_data.py put the splits on the machine the experiments ran on.
DATA_DIR = Path("/home/mchen/projects/rff-digits/data")

N_COMPONENTS = 1000  # D in the paper
GAMMA = 0.05         # RBF bandwidth, chosen on a validation split (Section 3)
C = 10.0             # inverse regularisation of the linear model on the features


def load_split(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA_DIR / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def linear_model(seed: int):
    return LogisticRegression(C=1.0, max_iter=1000)


def rff_model(seed: int):
    features = RBFSampler(gamma=GAMMA, n_components=N_COMPONENTS, random_state=seed)
    return make_pipeline(features, LogisticRegression(C=C, max_iter=1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(os.environ.get("LABCOAT_SEED", "0")))
    seed = parser.parse_args().seed
    train, test = load_split("train"), load_split("test_features")
    # Pixels are 0..16; the paper scales them to [0, 1] before either model.
    x_train, y_train, x_test = train["X"] / 16.0, train["y"], test["X"] / 16.0
    predictions = {}
    for name, build in (("linear", linear_model), ("rff", rff_model)):
        model = build(seed).fit(x_train, y_train)
        predictions[name] = model.predict(x_test).astype(int).tolist()
        print(f"trained {name} (seed {seed}) on {len(y_train)} images")
    Path("outputs").mkdir(exist_ok=True)
    Path("outputs/predictions.json").write_text(json.dumps(predictions))
    print(f"wrote predictions for {len(x_test)} test images to outputs/predictions.json")


if __name__ == "__main__":
    main()
