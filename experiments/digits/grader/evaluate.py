"""Score outputs/predictions.json against the held-out labels. Last stdout line: JSON metrics."""

import json
import sys
from pathlib import Path

import numpy as np

labels = np.load(Path(__file__).with_name("test_labels.npy"))
try:
    predictions = np.asarray(json.loads(Path("outputs/predictions.json").read_text()))
except (OSError, ValueError) as err:
    print(f"no usable predictions: {err}", file=sys.stderr)
    sys.exit(1)
if predictions.shape != labels.shape:
    print(f"expected {labels.shape[0]} predictions, got {predictions.shape}", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"accuracy": round(float((predictions == labels).mean()), 6)}))
