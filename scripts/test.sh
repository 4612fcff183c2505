#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust tests, the official SDKs against the real
# server, the Python and Node packages, and the Go-original conformance scenarios when they are present.
# Installs what it needs from crates.io, PyPI and npm on a fresh machine; fast when everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
PY_ENV="$CARGO_TARGET_DIR/pyenv"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the core builds without tokio and reqwest"
cargo check -p cliproxy-core --no-default-features --locked
if cargo tree -p cliproxy-core --no-default-features -e normal --locked | grep -E '(^| )(tokio|reqwest) v'; then
  echo "cliproxy-core without default features must not depend on tokio or reqwest" >&2
  exit 1
fi

step "cargo test (dev profile; also builds the server and mock binaries the other suites use)"
cargo build --workspace --bins --locked
cargo test --workspace --locked

step "python environment ($PY_ENV)"
if [ ! -x "$PY_ENV/bin/python" ]; then
  python3 -m venv "$PY_ENV"
fi
"$PY_ENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-test.txt"

step "Claude Code CLI (npm @anthropic-ai/claude-code) for the Python suite"
(cd "$ROOT/cliproxy-server/tests/sdk/claude-code" && npm install --no-audit --no-fund --silent)

step "official Python SDKs (openai, anthropic, google-genai) and Claude Code against the real server"
"$PY_ENV/bin/python" -m pytest -q "$ROOT/cliproxy-server/tests/sdk/python"

step "official Node SDK (openai) against the real server"
(cd "$ROOT/cliproxy-server/tests/sdk/node" && npm install --no-audit --no-fund --silent && node --test)

for pkg in bindings-python bindings-node; do
  if [ -x "$ROOT/$pkg/scripts/test.sh" ]; then
    step "$pkg"
    PY_ENV="$PY_ENV" "$ROOT/$pkg/scripts/test.sh"
  fi
done

if [ -x "$ROOT/cliproxy-server/tests/browser/run.sh" ]; then
  step "browser tests (headless Chromium)"
  PY_ENV="$PY_ENV" "$ROOT/cliproxy-server/tests/browser/run.sh"
fi

ARCH_CHECK="$ROOT/../shared/tools/arch_check.py"
if [ -f "$ARCH_CHECK" ]; then
  step "module layering (arch_check: no cycles, no edges against the layers)"
  python3 "$ARCH_CHECK" "$ROOT" | tail -n 1
  python3 "$ARCH_CHECK" "$ROOT" >/dev/null
fi

CONFORMANCE="${CONFORMANCE_DIR:-$ROOT/../shared/conformance}"
if [ -f "$CONFORMANCE/run.py" ]; then
  step "Go-original conformance scenarios ($CONFORMANCE)"
  "$PY_ENV/bin/python" "$CONFORMANCE/run.py" --proxy-bin "$CARGO_TARGET_DIR/debug/cliproxy-server"
  step "Go-original conformance scenarios of the Responses front"
  "$PY_ENV/bin/python" "$CONFORMANCE/run.py" --proxy-bin "$CARGO_TARGET_DIR/debug/cliproxy-server" \
    --scenarios "$CONFORMANCE/scenarios-next" --filter '*responses*'
fi

step "all suites passed"
