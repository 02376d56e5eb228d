#!/usr/bin/env bash
# `make demo`: after setup, check the machine and run a command in a sandbox.
# (Replaced by a real research run once the research loop lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/labcoat doctor
img=$(.venv/bin/python -c 'from labcoat.sandboxes.image import default_image; print(default_image())')
docker run --rm --network none --label labcoat.run_id=demo-smoke "$img" \
    python3 -c 'import os, sklearn; print(f"sandbox ok: uid={os.getuid()} sklearn={sklearn.__version__}")'
