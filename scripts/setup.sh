#!/usr/bin/env bash
# Set up reslab in ./.venv (created or reused).  `--test` adds the test dependencies.
# Installs Fashion-MNIST from Debian's `dataset-fashion-mnist` when apt-get is usable.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

[ -x .venv/bin/python ] || python3 -m venv .venv
# torch==2.13.0 is pinned here: on this machine it is the CPU build on local disk;
# a bare `torch` would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" -e ".${extras}"

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Fashion-MNIST (Debian package dataset-fashion-mnist)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null \
    || echo "setup: could not install dataset-fashion-mnist; reslab will look in --data-dir, \$RESLAB_DATA or download" >&2
fi
