#!/usr/bin/env bash
# Load test of the server over loopback with wrk: 50 keep-alive connections,
# GET and PUT of 100-byte values over a preloaded key set, for each sync
# policy. Usage: scripts/bench-http.sh [seconds] [sync policies...]
# Prints wrk's report for each run; the server and its data are removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
shift || true
POLICIES=${*:-never always}
KEYS=${KEYS:-100000}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)" >&2
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
[ -x ./mantisdb-rust ] || make -s build-rust

work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/put.lua" <<LUA
-- PUT of a 100-byte value to a random key of the preloaded set.
local body = '{"value":"' .. string.rep("v", 100) .. '"}'
request = function()
  local k = math.random(0, $KEYS - 1)
  return wrk.format("PUT", "/api/v1/kv/key" .. k, {["Content-Type"] = "application/json"}, body)
end
LUA
cat > "$work/get.lua" <<LUA
-- GET of a random key of the preloaded set.
request = function()
  return wrk.format("GET", "/api/v1/kv/key" .. math.random(0, $KEYS - 1))
end
LUA

for policy in $POLICIES; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  rm -rf "$work/data"
  ./mantisdb-rust --data-dir "$work/data" --port "$port" --resp-port -1 --sync "$policy" --log-level warn &
  echo $! > "$work/pid"
  for _ in $(seq 50); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  # Preload in batches of 1000 through the batch API.
  python3 - "$port" "$KEYS" <<'PY'
import json, sys, urllib.request
port, keys = int(sys.argv[1]), int(sys.argv[2])
for start in range(0, keys, 1000):
    ops = [{"op": "put", "key": f"key{i}", "value": "v" * 100} for i in range(start, min(start + 1000, keys))]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/kv/batch",
        data=json.dumps({"operations": ops, "atomic": True}).encode(), method="POST")
    urllib.request.urlopen(req).read()
PY
  echo "=== sync=$policy ceiling: GET /api/v1/version (no engine work), same server, same wrk settings"
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/api/v1/version"
  for op in get put; do
    echo "=== sync=$policy $op: wrk -t$THREADS -c$CONNS -d${DURATION}s --latency ($KEYS keys, 100-byte values)"
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$work/$op.lua" "http://127.0.0.1:$port"
  done
  kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
done
