"""Score outputs/predictions.json against the held-out test labels (only the grader has them).

Prints one JSON object as its last line: `accuracy` (the paper's method, random Fourier
features) and `accuracy_linear` (the logistic-regression row). Nothing the candidate reports
is trusted: both numbers are computed here from its predictions.
"""

import json
import sys
from pathlib import Path

import numpy as np

labels = np.load(Path(__file__).with_name("test_labels.npy"))
try:
    predictions = json.loads(Path("outputs/predictions.json").read_text())
except (OSError, ValueError) as err:
    print(f"no usable predictions: {err}", file=sys.stderr)
    sys.exit(1)
if not isinstance(predictions, dict):
    print("outputs/predictions.json must map a model name to its predictions", file=sys.stderr)
    sys.exit(1)

metrics = {}
for name, key in (("rff", "accuracy"), ("linear", "accuracy_linear")):
    try:
        guessed = np.asarray(predictions.get(name), dtype=np.int64)
    except (TypeError, ValueError):
        print(f"the {name!r} predictions are not a list of labels", file=sys.stderr)
        continue
    if guessed.shape != labels.shape:
        print(f"expected {labels.shape[0]} {name!r} predictions, got shape {guessed.shape}",
              file=sys.stderr)
        continue
    metrics[key] = round(float((guessed == labels).mean()), 6)
print(json.dumps(metrics))
