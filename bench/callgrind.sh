#!/usr/bin/env bash
# Instructions per request of the server (valgrind --tool=callgrind counts instructions, not time, so the
# number is repeatable on a busy machine). Usage: bench/callgrind.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p cliproxy-server -p cliproxy-mock >/dev/null
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$TARGET/release/cliproxy-mock" --port 0 >"$work/mock.out" &
until [ -s "$work/mock.out" ]; do sleep 0.05; done
mock=$(sed -n 's/^listening on //p' "$work/mock.out")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/config.yaml" <<YAML
port: $port
openai-compatibility: [{name: m, base-url: "$mock/v1", api-key-entries: [{api-key: sk-bench}], models: [{name: gpt-4o}]}]
YAML
run() {  # $1 = number of requests; prints total instructions of the server process
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1" "$TARGET/release/cliproxy-server" --config "$work/config.yaml" >/dev/null 2>"$work/vg.$1" &
  local vg=$!
  until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.2; done
  python3 - "$port" "$1" <<'PY'
import http.client, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hi"}]})
for _ in range(n):
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    c.getresponse().read()
PY
  kill -TERM $vg; wait $vg 2>/dev/null || true
  grep -m1 '^summary:' "$work/cg.$1" | awk '{print $2}'
}
base=$(run 10)
full=$(run $((N + 10)))
echo "server instructions per chat passthrough request: $(( (full - base) / N ))  (callgrind, $N requests)"
