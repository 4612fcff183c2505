#!/usr/bin/env bash
# Builds the Docker image and runs it, plainly and through docker-compose, on a machine without a Docker
# engine or registry access: rootful podman from Debian, local stand-ins for the two base images (debootstrap),
# the host's cargo registry mounted so the build runs offline. Checks /healthz and an authenticated
# /v1/models each time. Slow on a cold machine (base images, a release build): not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-/tmp/cliproxy-containers}
IMAGE=localhost/cliproxy:latest
PORT=${PORT:-18317}
KEY=container-test-key
mkdir -p "$WORK"
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
apt-get install -y -qq podman buildah runc debootstrap catatonit docker-compose curl >/dev/null

# This VM cannot raise rlimits; podman's defaults would make every container fail to start.
NOFILE=$(ulimit -Hn); NPROC=$(ulimit -Hu)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
if [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; then NPROC=32768; fi
mkdir -p /etc/containers
# crun refuses this VM's hybrid cgroup layout; runc handles it.
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\n' \
  "$NOFILE" "$NOFILE" "$NPROC" "$NPROC" > /etc/containers/containers.conf

MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
slim() { (cd "$1" && rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* usr/share/man/* usr/share/locale/*); }

if ! podman image exists docker.io/library/debian:bookworm-slim; then
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
  slim "$WORK/rootfs"
  tar -C "$WORK/rootfs" -c . | podman import - docker.io/library/debian:bookworm-slim
fi
if ! podman image exists docker.io/library/rust:1-bookworm; then
  rm -rf "$WORK/rust-rootfs"
  debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates bookworm "$WORK/rust-rootfs" "$MIRROR" \
    >"$WORK/debootstrap-rust.log"
  slim "$WORK/rust-rootfs"
  TC=$(rustc --print sysroot)
  cp -a "$TC/bin/." "$WORK/rust-rootfs/usr/local/bin/"
  cp -a "$TC/lib/." "$WORK/rust-rootfs/usr/local/lib/"
  tar -C "$WORK/rust-rootfs" -c . | podman import -c 'ENV CARGO_HOME=/usr/local/cargo' \
    -c 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - docker.io/library/rust:1-bookworm
fi

cargo fetch --locked
printf '[net]\noffline = true\n' >"$WORK/cargo-offline.toml"
podman build --pull=never \
  -v "${CARGO_HOME:-$HOME/.cargo}/registry:/usr/local/cargo/registry:O" \
  -v "$WORK/cargo-offline.toml:/usr/local/cargo/config.toml:ro" \
  -t "$IMAGE" "$ROOT"
podman image inspect "$IMAGE" --format 'image {{.Size}} bytes, user {{.Config.User}}'

check() {  # the server answers health checks and authenticated API calls
  for _ in $(seq 1 50); do curl -fsS -m 2 "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS -m 2 "http://127.0.0.1:$PORT/healthz"
  curl -fsS -m 2 -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/models" >/dev/null
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/models")" = 401 ]
}

# Without a client key the image must refuse to start (it listens on 0.0.0.0).
if podman run --rm "$IMAGE" >"$WORK/refuse.log" 2>&1; then
  echo "the image started without a client key" >&2; exit 1
fi
grep -q CLIPROXY_API_KEY "$WORK/refuse.log"

cid=$(podman run -d --init -e CLIPROXY_API_KEY=$KEY -p "127.0.0.1:$PORT:8317" -v cliproxy-test:/config "$IMAGE")
trap 'podman rm -f -t0 "$cid" >/dev/null 2>&1 || true' EXIT
check && echo " <- podman run OK"
start=$(date +%s%N); podman stop -t 15 "$cid" >/dev/null; stop_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "stopped in ${stop_ms} ms"; [ "$stop_ms" -lt 5000 ]
podman rm -f "$cid" >/dev/null; podman volume rm -f cliproxy-test >/dev/null; trap - EXIT

SOCK=$WORK/podman.sock; rm -f "$SOCK"
podman system service --time=0 "unix://$SOCK" >"$WORK/podman-service.log" 2>&1 &
SVC=$!
COMPOSE_DIR=$WORK/compose; rm -rf "$COMPOSE_DIR"; mkdir -p "$COMPOSE_DIR"
cp "$ROOT/docker-compose.yml" "$COMPOSE_DIR/"
sed "s/^host: 127.0.0.1 .*/host: 0.0.0.0/; s/^port: .*/port: 8317/" "$ROOT/config.example.yaml" \
  | sed '/^claude-api-key:/,$d' >"$COMPOSE_DIR/config.yaml"
sed -i "s/127.0.0.1:8317:8317/127.0.0.1:$PORT:8317/" "$COMPOSE_DIR/docker-compose.yml"
export DOCKER_HOST=unix://$SOCK CLIPROXY_API_KEY=$KEY
trap 'docker-compose -f "$COMPOSE_DIR/docker-compose.yml" -p cliproxytest down -v >/dev/null 2>&1 || true; kill $SVC 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break; sleep 0.2; done
docker-compose -f "$COMPOSE_DIR/docker-compose.yml" -p cliproxytest up -d --no-build
check && echo " <- docker-compose up OK"
docker-compose -f "$COMPOSE_DIR/docker-compose.yml" -p cliproxytest down -v
echo "container tests passed"
