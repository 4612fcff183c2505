#!/usr/bin/env bash
# Builds the `cliproxy` Python package into a virtualenv and runs its tests against the mock upstream.
#
#   bindings-python/scripts/test.sh [pytest args...]
#
# Idempotent: creates the virtualenv (default target/pyenv, or $PY_ENV) and installs the test requirements only
# when missing or changed, so a second run only rebuilds what changed and runs the tests. The extension is built
# with `maturin develop` in the dev profile into the workspace's target dir, like every other test.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PY_ENV="${PY_ENV:-$CARGO_TARGET_DIR/pyenv}"
REQUIREMENTS="$HERE/tests/requirements.txt"

if [ ! -x "$PY_ENV/bin/python" ]; then
  echo "creating the virtualenv $PY_ENV"
  "${PYTHON:-python3}" -m venv "$PY_ENV"
fi

# Reinstall the requirements only when their list changed since the last successful install.
STAMP="$PY_ENV/.cliproxy-python-requirements"
WANT="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  "$PY_ENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$WANT" > "$STAMP"
fi

# The tests start the mock upstream binary.
cargo build --quiet -p cliproxy-mock --bin cliproxy-mock

# `maturin develop` installs the package in editable mode: the Python sources are used from python/ directly.
VIRTUAL_ENV="$PY_ENV" PATH="$PY_ENV/bin:$PATH" \
  "$PY_ENV/bin/maturin" develop --quiet --manifest-path "$HERE/Cargo.toml"

cd "$HERE"
exec "$PY_ENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
