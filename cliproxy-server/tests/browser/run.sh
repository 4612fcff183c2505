#!/usr/bin/env bash
# Headless-Chromium tests of the accounts page (/v0/oauth/accounts, also /v0/oauth/kiro) against the real server
# and mock binaries.
# Installs Debian's chromium and the `playwright` Python package (driver only: it drives /usr/bin/chromium and
# downloads no browser) when they are missing. Extra arguments go to pytest (e.g. `-k builder`).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PY_ENV="${PY_ENV:-$CARGO_TARGET_DIR/pyenv}"
export CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$CHROMIUM" ]; then
  apt-get update
  apt-get install -y chromium
  CHROMIUM=$(command -v chromium)
fi
if [ ! -x "$PY_ENV/bin/python" ]; then
  python3 -m venv "$PY_ENV"
fi
"$PY_ENV/bin/python" -m pip install --quiet --disable-pip-version-check pytest playwright
(cd "$ROOT" && cargo build -p cliproxy-server -p cliproxy-mock --bins --locked)
exec "$PY_ENV/bin/python" -m pytest -q -p no:cacheprovider "$HERE" "$@"
