#!/usr/bin/env bash
# Tests the Node package: npm dependencies (installed only when missing or changed), the addon and the mock
# upstream built in the dev profile, `node --test`, `tsc --noEmit` on the typed example, and the packed
# tarball installed into an empty directory, where examples/stream.mjs must stream an answer from the mock.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=$PWD
ROOT=$(cd .. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf '\n==> bindings-node: %s\n' "$*"; }

step "npm dependencies"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  echo "up to date"
fi

step "build the addon and cliproxy-mock (dev profile)"
cargo build -p cliproxy-mock --bin cliproxy-mock
npm run --silent build

step "node --test"
npm test

step "tsc --noEmit (examples/stream.ts against index.d.ts)"
npm run --silent typecheck

step "npm pack, install into an empty directory, stream from the mock"
WORK=$(mktemp -d)
MOCK_PID=
cleanup() {
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
npm pack --silent --pack-destination "$WORK" >/dev/null
TARBALL=$(ls "$WORK"/cliproxy-*.tgz)
CONTENTS=$(tar -tzf "$TARBALL")
grep -q '^package/cliproxy\..*\.node$' <<<"$CONTENTS" || { echo "the tarball has no .node binary" >&2; exit 1; }
mkdir "$WORK/app"
(cd "$WORK/app" && npm install --no-audit --no-fund --loglevel=error "$TARBALL" >/dev/null)
cp examples/stream.mjs "$WORK/app/"

"$CARGO_TARGET_DIR/debug/cliproxy-mock" --port 0 >"$WORK/mock.out" &
MOCK_PID=$!
for _ in $(seq 100); do
  MOCK_URL=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$WORK/mock.out" | head -1)
  [ -n "$MOCK_URL" ] && break
  sleep 0.1
done
[ -n "${MOCK_URL:-}" ] || { echo "cliproxy-mock did not start" >&2; exit 1; }
cat >"$WORK/app/config.yaml" <<YAML
auth-dir: $WORK/auth
openai-compatibility:
  - { name: mock, base-url: "$MOCK_URL/v1", api-key-entries: [{ api-key: sk-pack-1 }], models: [{ name: gpt-4o, alias: packed-model }] }
YAML
EXPECTED='Hello from the packed tarball: 世界 👋'
GOT=$(cd "$WORK/app" && node stream.mjs config.yaml packed-model "mock:{\"reply\":\"$EXPECTED\",\"chunk\":1}")
if [ "$GOT" != "$EXPECTED" ]; then
  printf 'examples/stream.mjs from the installed tarball printed %q, expected %q\n' "$GOT" "$EXPECTED" >&2
  exit 1
fi
(cd "$WORK/app" && node -e "const { Client, CliproxyError } = require('cliproxy'); if (typeof Client !== 'function' || typeof CliproxyError !== 'function') process.exit(1)")
echo "installed tarball streams: $GOT"
