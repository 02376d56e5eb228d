#!/usr/bin/env bash
# Build labcoat's sandbox *base* image offline: mmdebstrap a minimal Debian from the machine's own
# apt sources and pipe the tarball into `docker import`. No registry is contacted. ~40 s.
#
#   docker/bootstrap-base.sh TAG
#
# The tag is applied only after mmdebstrap succeeded, so an interrupted bootstrap never leaves a
# half-made image under TAG.
set -euo pipefail
TAG=${1:?usage: bootstrap-base.sh TAG}
SUITE=${LABCOAT_BASE_SUITE:-bookworm}
PACKAGES=python3,python3-pip,git,ca-certificates,tini,procps

if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "mmdebstrap is not installed: run 'apt-get install mmdebstrap' (or 'make setup' as root)," \
         "or build on a public image with 'labcoat sandbox build --base python:3.11-slim'" >&2
    exit 3
fi

# The machine's own sources: deb822 first, then the one-line format. Only Debian's own archives.
SOURCES=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ] && grep -qE '^[^#]*(deb\.debian\.org|debian)' "$f"; then SOURCES=$f; break; fi
done
MIRROR_ARGS=()
if [ -n "$SOURCES" ]; then MIRROR_ARGS=("$SOURCES"); fi

log=$(mktemp)
idfile=$(mktemp)
trap 'rm -f "$log" "$idfile"' EXIT
set +e
mmdebstrap --quiet --variant=minbase --include="$PACKAGES" --format=tar \
        --aptopt='Acquire::Retries "3"' \
        --customize-hook='chroot "$1" apt-get clean' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
        "$SUITE" - "${MIRROR_ARGS[@]}" 2>"$log" \
     | docker import --change 'CMD ["/bin/bash"]' - >"$idfile"
status=("${PIPESTATUS[@]}")
set -e
id=$(tr -d '[:space:]' <"$idfile")
if [ "${status[0]}" != "0" ] || [ "${status[1]}" != "0" ] || [ -z "$id" ]; then
    [ -n "$id" ] && docker rmi -f "$id" >/dev/null 2>&1 || true
    echo "mmdebstrap/docker import failed (exit ${status[*]}):" >&2
    tail -n 20 "$log" >&2
    exit 4
fi
docker tag "$id" "$TAG"
echo "$TAG"
