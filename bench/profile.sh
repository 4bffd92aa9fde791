#!/usr/bin/env bash
# Profile a resp-kv node under redis-benchmark load with py-spy; writes a flame graph SVG.
#
#   bench/profile.sh                       # start a fresh node, profile SET+GET at -P 16
#   bench/profile.sh --pid 12345           # profile an already running node instead
#   TESTS=get PIPELINE=1 SECONDS_=20 bench/profile.sh
#
# Output: bench/results/profile-<tests>-P<depth>.svg (open it in a browser). py-spy samples the
# interpreter from outside (ptrace), so the node runs unmodified; as non-root you may need
# `sudo` or kernel.yama.ptrace_scope=0. `--native` adds C frames (uvloop, hiredis).
# pyinstrument alternative (in-process): .venv/bin/pyinstrument -r html -o out.html -m resp_kv --port ...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=.venv/bin/python
PYSPY=.venv/bin/py-spy
TESTS=${TESTS:-set,get}
PIPELINE=${PIPELINE:-16}
SECONDS_=${SECONDS_:-15}
REQUESTS=${REQUESTS:-100000000}   # large: the benchmark is stopped when py-spy is done
PID=""
if [[ "${1:-}" == "--pid" ]]; then PID=$2; PORT=${PORT:?set PORT to the client port of that node}; fi

[[ -x $PYSPY ]] || { echo "py-spy missing: make bench (installs the bench extras)"; exit 1; }
mkdir -p bench/results
OUT=bench/results/profile-${TESTS//,/+}-P${PIPELINE}.svg
started_node=""
bench_pid=""
tmp=$(mktemp -d)
cleanup() {
  [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null || true
  if [[ -n $started_node ]]; then kill -TERM "$started_node" 2>/dev/null || true; wait "$started_node" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [[ -z $PID ]]; then
  PORT=$($PY -c 'import sys; sys.path.insert(0, "."); from tests.helpers.ports import free_ports; print(*free_ports(2))')
  read -r PORT PEER_PORT <<<"$PORT"
  $PY -m resp_kv --port "$PORT" --peer-port "$PEER_PORT" --data-dir "$tmp/data" --fsync everysec \
    >"$tmp/node.log" 2>&1 &
  started_node=$!
  PID=$started_node
  for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$PORT" ping >/dev/null || { cat "$tmp/node.log"; exit 1; }
fi

redis-benchmark -p "$PORT" -t "$TESTS" -c 50 -d 100 -r 100000 -P "$PIPELINE" -n "$REQUESTS" -q \
  >"$tmp/bench.log" 2>&1 &
bench_pid=$!
"$PYSPY" record --pid "$PID" --duration "$SECONDS_" --rate 250 --output "$OUT" --format flamegraph
echo "flame graph: $OUT (node pid $PID, port $PORT, $TESTS at -P $PIPELINE)"
