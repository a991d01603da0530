#!/usr/bin/env bash
# make bench-resp: redis-benchmark against MantisDB (./mantisdb-rust) and
# redis-server side by side in one run, the two servers alternating in
# rounds (the first to go swaps every round), medians over the rounds.
#
#   sync never:  MantisDB --sync never  vs Redis without persistence
#   sync always: MantisDB --sync always vs Redis appendonly yes, appendfsync always
#
# Each test is one redis-benchmark run (-c CLIENTS -d DATA -r KEYSPACE):
# SET, GET, INCR, MSET (10 keys), then SET and GET pipelined (-P 16).
# Throughput and p50/p99 are redis-benchmark's own; beside each figure
# stands the CPU the server process used during that run (from
# /proc/PID/stat) and the CPU of the load generator (from /usr/bin/time),
# so that what was measured is the server. The same workload over HTTP
# (wrk: GET and PUT of DATA-byte values on the same keys) runs against
# MantisDB in every round, for what RESP buys over HTTP.
#
# Environment: ROUNDS (3), N (requests per test, 100000), N_ALWAYS (requests
# per write test under sync always, 150000: MSET runs half as many, GET twice
# as many, so that every cell under always lasts about 2 s or more; a
# cell of 0.3 s moved by a third with one disk stall), CLIENTS (50), DATA (100), KEYSPACE (100000),
# WRK_SECS (5), MODES ("never always"), OUT (/tmp/mantisdb-bench-resp:
# results.tsv, one row per run, and summary.md, the medians as a table),
# TESTS (a subset of "SET GET INCR MSET SET-P16 GET-P16 HTTP-PUT HTTP-GET",
# all by default), SERVERS ("mantisdb redis"; add mantisdb-goroutines for
# the same binary with --resp-transport goroutines, the transport before
# the event loop, and mantisdb-loops1 for it with --resp-loops 1, one
# event loop, and mantisdb-base for another build, MANTIS_BASE, with its
# defaults: a before/after in one run). The servers' order rotates every
# round.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
N_ALWAYS=${N_ALWAYS:-150000}
CLIENTS=${CLIENTS:-50}
DATA=${DATA:-100}
KEYSPACE=${KEYSPACE:-100000}
WRK_SECS=${WRK_SECS:-5}
MODES=${MODES:-never always}
OUT=${OUT:-/tmp/mantisdb-bench-resp}
MANTIS=${MANTIS:-./mantisdb-rust}
TESTS=${TESTS:-SET GET INCR MSET SET-P16 GET-P16 HTTP-PUT HTTP-GET}
SERVERS=${SERVERS:-mantisdb redis}

for tool in redis-server redis-benchmark redis-cli wrk /usr/bin/time python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench-resp: $tool not found (apt-get install -y redis-server redis-tools wrk time)" >&2
    exit 2
  fi
done
[ -x "$MANTIS" ] || { echo "bench-resp: $MANTIS not built (make build-rust)" >&2; exit 2; }

mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
results="$OUT/results.tsv"
printf 'round\tmode\tserver\ttest\trps\tp50_ms\tp99_ms\twall_s\tserver_cpu_s\tclient_cpu_s\n' > "$results"

# shellcheck source=scripts/proc-lib.sh
. "$(dirname "$0")/proc-lib.sh"

wait_ping() {
  for _ in $(seq 200); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "bench-resp: no PONG on port $1" >&2
  return 1
}

# start_server NAME MODE: starts MantisDB or Redis on fresh data; sets
# server_pid, resp_port and http_port.
start_server() {
  local name=$1 mode=$2 dir
  dir=$(mktemp -d -p "$work")
  resp_port=$(free_port)
  http_port=$(free_port)
  if [ "${name#mantisdb}" != "$name" ]; then
    local transport=() bin=$MANTIS
    [ "$name" = mantisdb-goroutines ] && transport=(--resp-transport goroutines)
    [ "$name" = mantisdb-loops1 ] && transport=(--resp-loops 1)
    [ "$name" = mantisdb-base ] && bin=${MANTIS_BASE:?MANTIS_BASE names the build mantisdb-base runs}
    "$bin" --data-dir "$dir" --bind 127.0.0.1 --port "$http_port" --resp-port "$resp_port" \
      --sync "$mode" --log-level warn "${transport[@]}" >"$dir/server.log" 2>&1 &
  else
    local persist=(--appendonly no)
    [ "$mode" = always ] && persist=(--appendonly yes --appendfsync always)
    redis-server --bind 127.0.0.1 --port "$resp_port" --dir "$dir" --save '' "${persist[@]}" \
      --logfile "$dir/server.log" &
  fi
  server_pid=$!
  pids+=("$server_pid")
  wait_ping "$resp_port"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# bench ROUND MODE SERVER LABEL REQUESTS ARGS...: one redis-benchmark run.
bench() {
  local round=$1 mode=$2 server=$3 label=$4 n=$5
  shift 5
  local c0 c1 csv line
  c0=$(cpu_seconds "$server_pid")
  if ! /usr/bin/time -f '%e %U %S' -o "$work/time" \
    redis-benchmark -h 127.0.0.1 -p "$resp_port" -c "$CLIENTS" -d "$DATA" -r "$KEYSPACE" -n "$n" --csv "$@" \
    >"$work/csv" 2>&1 || ! grep -q '^"' <(sed -n 2p "$work/csv"); then
    # A server error ends redis-benchmark early: record it, go on.
    printf '%s\t%s\t%s\t%s\tfailed: %s\n' "$round" "$mode" "$server" "$label" "$(tr '\n' ' ' <"$work/csv")" >>"$results"
    printf '  %-8s %-7s %-10s failed: %s\n' "$mode" "$server" "$label" "$(head -c 200 "$work/csv")"
    return 0
  fi
  c1=$(cpu_seconds "$server_pid")
  csv=$(sed -n 2p "$work/csv")
  line=$(python3 - "$csv" "$(cat "$work/time")" "$c0" "$c1" <<'PY'
import csv, sys
row = next(csv.reader([sys.argv[1]]))
wall, user, sys_ = (float(x) for x in sys.argv[2].split())
rps, p50, p99 = float(row[1]), float(row[4]), float(row[6])
print(f"{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{wall:.2f}\t{float(sys.argv[4]) - float(sys.argv[3]):.2f}\t{user + sys_:.2f}")
PY
)
  printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$server" "$label" "$line" >>"$results"
  printf '  %-8s %-7s %-10s %s\n' "$mode" "$server" "$label" "$line"
}

cat >"$work/get.lua" <<LUA
request = function()
  return wrk.format("GET", string.format("/api/v1/kv/key:%012d", math.random(0, $KEYSPACE - 1)))
end
LUA
cat >"$work/put.lua" <<LUA
local body = string.rep("x", $DATA)
request = function()
  return wrk.format("PUT", string.format("/api/v1/kv/key:%012d", math.random(0, $KEYSPACE - 1)),
    {["Content-Type"] = "application/octet-stream"}, body)
end
LUA

# http ROUND MODE LABEL SCRIPT: wrk against MantisDB's HTTP port.
http() {
  local round=$1 mode=$2 label=$3 script=$4 c0 c1 line
  c0=$(cpu_seconds "$server_pid")
  /usr/bin/time -f '%e %U %S' -o "$work/time" \
    wrk -t2 -c"$CLIENTS" -d"${WRK_SECS}s" --latency -s "$script" "http://127.0.0.1:$http_port" >"$work/wrk"
  c1=$(cpu_seconds "$server_pid")
  line=$(python3 - "$work/wrk" "$(cat "$work/time")" "$c0" "$c1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
# A GET of a key no SET reached answers 404, as RESP answers a null bulk:
# both are answers, and both count.
wall, user, sys_ = (float(x) for x in sys.argv[2].split())
print(f"{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{wall:.2f}\t{float(sys.argv[4]) - float(sys.argv[3]):.2f}\t{user + sys_:.2f}")
PY
)
  printf '%s\t%s\tmantisdb-http\t%s\t%s\n' "$round" "$mode" "$label" "$line" >>"$results"
  printf '  %-8s %-7s %-10s %s\n' "$mode" "http" "$label" "$line"
}

want() { [[ " $TESTS " == *" $1 "* ]]; }

run_server() {
  local round=$1 mode=$2 server=$3 n=$N n_get=$N n_mset=$N
  # Under always a write waits for its sync: ~60k SETs/s, ~25k MSETs/s;
  # the counts below keep each cell near 2 s or more (GET does not wait).
  [ "$mode" = always ] && n=$N_ALWAYS n_get=$((N_ALWAYS * 2)) n_mset=$((N_ALWAYS / 2))
  start_server "$server" "$mode"
  want SET && bench "$round" "$mode" "$server" SET "$n" -t set
  want GET && bench "$round" "$mode" "$server" GET "$n_get" -t get
  want INCR && bench "$round" "$mode" "$server" INCR "$n" -t incr
  want MSET && bench "$round" "$mode" "$server" MSET "$n_mset" -t mset
  want SET-P16 && bench "$round" "$mode" "$server" "SET-P16" "$((n * 4))" -t set -P 16
  want GET-P16 && bench "$round" "$mode" "$server" "GET-P16" "$((N * 4))" -t get -P 16
  if [ "$server" = mantisdb ]; then
    want HTTP-PUT && http "$round" "$mode" "HTTP-PUT" "$work/put.lua"
    want HTTP-GET && http "$round" "$mode" "HTTP-GET" "$work/get.lua"
  fi
  stop_server
}

{
  echo "machine: $(nproc) vCPU, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "start: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mantisdb: $($MANTIS --version 2>&1 | head -1) (tree $(git describe --always --dirty 2>/dev/null || echo unknown)); $(redis-server --version | cut -d' ' -f1-3)"
  echo "settings: ROUNDS=$ROUNDS N=$N N_ALWAYS=$N_ALWAYS CLIENTS=$CLIENTS DATA=$DATA KEYSPACE=$KEYSPACE WRK_SECS=$WRK_SECS TESTS=\"$TESTS\" SERVERS=\"$SERVERS\""
} | tee "$OUT/run.txt"
read -r -a servers <<<"$SERVERS"
for round in $(seq "$ROUNDS"); do
  # Rotate: each server goes first in turn.
  k=$(((round - 1) % ${#servers[@]}))
  order=("${servers[@]:k}" "${servers[@]:0:k}")
  for mode in $MODES; do
    echo "round $round/$ROUNDS, sync $mode: ${order[*]}"
    for server in "${order[@]}"; do run_server "$round" "$mode" "$server"; done
  done
done
echo "end: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/run.txt"

python3 - "$results" <<'PY' | tee "$OUT/summary.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(mode, server, test, field):
    v = [float(r[field]) for r in rows if (r["mode"], r["server"], r["test"]) == (mode, server, test)
         and not r["rps"].startswith("failed")]
    return statistics.median(v) if v else None
def cell(mode, server, test):
    rps = med(mode, server, test, "rps")
    if rps is None:
        failed = [r["rps"] for r in rows if (r["mode"], r["server"], r["test"]) == (mode, server, test)]
        return (failed[0][:120] if failed else ""), None
    p50, p99 = med(mode, server, test, "p50_ms"), med(mode, server, test, "p99_ms")
    cpu, wall = med(mode, server, test, "server_cpu_s"), med(mode, server, test, "wall_s")
    client = med(mode, server, test, "client_cpu_s")
    return (f"{rps:,.0f} ops/s, p50 {p50:.2f} / p99 {p99:.2f} ms, server CPU {cpu / wall * 100:.0f}% "
            f"({cpu / (rps * wall) * 1e6:.1f} us/op), load generator {client / wall * 100:.0f}%"), rps
print("| sync | test | MantisDB | Redis | MantisDB / Redis |")
print("| --- | --- | --- | --- | --- |")
for mode in ("never", "always"):
    for test in ("SET", "GET", "INCR", "MSET", "SET-P16", "GET-P16"):
        m, mr = cell(mode, "mantisdb", test)
        r, rr = cell(mode, "redis", test)
        if not m:
            continue
        ratio = f"{mr / rr:.2f}x" if mr and rr else "n/a"
        print(f"| {mode} | {test} | {m} | {r} | {ratio} |")
for variant, title in (("mantisdb-goroutines", "goroutine per connection"), ("mantisdb-loops1", "one event loop"),
                       ("mantisdb-base", "base build")):
    if not any(r["server"] == variant for r in rows):
        continue
    print()
    print(f"| sync | test | MantisDB, {title} | MantisDB, default | default / {title} | {title} / Redis | default / Redis |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode in ("never", "always"):
        for test in ("SET", "GET", "INCR", "MSET", "SET-P16", "GET-P16"):
            g, gr = cell(mode, variant, test)
            m, mr = cell(mode, "mantisdb", test)
            _, rr = cell(mode, "redis", test)
            if not g:
                continue
            ratio = f"{mr / gr:.2f}x" if mr and gr else "n/a"
            gvs = f"{gr / rr:.2f}x" if gr and rr else "n/a"
            vs = f"{mr / rr:.2f}x" if mr and rr else "n/a"
            print(f"| {mode} | {test} | {g} | {m} | {ratio} | {gvs} | {vs} |")
print()
print("| sync | HTTP (wrk) | MantisDB over HTTP | MantisDB over RESP, same op | RESP / HTTP |")
print("| --- | --- | --- | --- | --- |")
for mode in ("never", "always"):
    for test, peer in (("HTTP-PUT", "SET"), ("HTTP-GET", "GET")):
        h, hr = cell(mode, "mantisdb-http", test)
        r, rr = cell(mode, "mantisdb", peer)
        if not h:
            continue
        ratio = f"{rr / hr:.2f}x" if hr and rr else "n/a"
        print(f"| {mode} | {test} | {h} | {r} | {ratio} |")
PY
