#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: .venv with labcoat[dev], Debian's chromium (browser tests),
# a Docker engine, the sandbox image.
# Safe to run again: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/.labcoat"
mkdir -p "$STATE"

say() { printf '[setup] %s\n' "$*"; }

# 1. Python environment ---------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp="$STATE/install.stamp"
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c 'import labcoat' 2>/dev/null; then
    say "installing labcoat[dev] into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" > "$stamp"
fi

apt_install() {
    if [ ! -f "$STATE/apt-updated" ]; then
        apt-get update -qq && touch "$STATE/apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The viewer's browser tests drive Debian's chromium through Playwright (which cannot download
# a browser of its own here). Both `make test` and `make test-fast` need it.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's chromium (the viewer's browser tests)"
        apt_install chromium
    else
        say "no /usr/bin/chromium: the browser tests will fail; install Debian's chromium package"
    fi
fi

if [ "${1:-}" = "--python-only" ]; then
    exit 0  # `make test-fast`: no Docker engine is started or waited for
fi

# 2. Docker engine --------------------------------------------------------------------------
engine_up() { timeout 10 docker info >/dev/null 2>&1; }

if ! engine_up; then
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        cat >&2 <<'MSG'
[setup] No Docker engine answers `docker info`, and this is not a root shell on Debian/Ubuntu,
        so labcoat will not install one for you. Install Docker (https://docs.docker.com/engine/install/),
        start it (`sudo systemctl start docker`), make sure your user can run `docker info`, then re-run.
MSG
        exit 1
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        say "installing Debian's docker.io"
        apt_install docker.io
    fi
    say "starting dockerd (log: $STATE/dockerd.log)"
    setsid nohup dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
    echo $! > "$STATE/dockerd.pid"
    for _ in $(seq 1 60); do
        engine_up && break
        sleep 1
    done
    if ! engine_up; then
        echo "[setup] dockerd did not answer within 60 s; see $STATE/dockerd.log" >&2
        tail -n 20 "$STATE/dockerd.log" >&2 || true
        exit 1
    fi
fi
say "docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"

# The offline base image is made by mmdebstrap; install it only when we may need it.
if ! command -v mmdebstrap >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing mmdebstrap (offline base image)"
    apt_install mmdebstrap
fi

# 3. Sandbox image --------------------------------------------------------------------------
.venv/bin/labcoat sandbox build
