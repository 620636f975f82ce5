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
# The test suite renders reports in headless Chromium (tests/test_browser.py); Debian's package
# installed in 43 s on the development machine.
if [ -n "$extras" ] && ! command -v chromium >/dev/null && ! command -v chromium-headless-shell >/dev/null \
    && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Chromium for the browser tests (Debian package chromium)" >&2
  { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "setup: could not install chromium; tests/test_browser.py will skip" >&2
fi
