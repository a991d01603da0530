#!/usr/bin/env bash
# The server's CPU per request under redis-benchmark, for comparing builds:
#
#   ROUNDS=5 scripts/resp-cpu.sh ./mantisdb-old ./mantisdb-rust redis
#   scripts/resp-cpu.sh './mantisdb-rust --resp-loops 1' './mantisdb-rust --resp-loops 2'
#
# Each argument is a MantisDB binary (started with --sync never), with
# flags of its own after it in the same argument if any, or "redis"
# (redis-server without persistence). Every round starts each
# server on fresh data, in an order that rotates from round to round, and
# runs every test against it: redis-benchmark -c 50 -d DATA -r 100000
# -t set|get|incr|mset, pipelined tests with -P 16. The CPU the server process
# used during a test (utime + stime from /proc/PID/stat) divided by the
# requests is its CPU per request. Prints one line per test and round
# (round, server, test, us/op, ops/s, p99 ms), then the medians.
#
# Environment: ROUNDS (3), N (requests of SET, GET and INCR, 300000;
# pipelined tests 2N), N_MSET (50000), TESTS ("SET GET MSET SET-P16
# GET-P16"; INCR and INCR-P16 may be added), DATA (value bytes, 100),
# OUT (the per-round lines, /tmp/mantisdb-resp-cpu.tsv).
set -euo pipefail
ROUNDS=${ROUNDS:-3}
N=${N:-300000}
N_MSET=${N_MSET:-50000}
DATA=${DATA:-100}
TESTS=${TESTS:-SET GET MSET SET-P16 GET-P16}
OUT=${OUT:-/tmp/mantisdb-resp-cpu.tsv}
[ $# -gt 0 ] || { echo "usage: $0 BINARY|redis..." >&2; exit 2; }
for tool in redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "resp-cpu: $tool not found" >&2; exit 2; }
done

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
: >"$OUT"
# shellcheck source=scripts/proc-lib.sh
. "$(dirname "$0")/proc-lib.sh"

servers=("$@")
for round in $(seq "$ROUNDS"); do
  for k in $(seq 0 $((${#servers[@]} - 1))); do
    server=${servers[$(((k + round) % ${#servers[@]}))]}
    dir=$(mktemp -d -p "$work")
    port=$(free_port)
    if [ "$server" = redis ]; then
      redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no --logfile "$dir/log" &
    else
      read -r -a cmd <<<"$server"
      "${cmd[@]}" --data-dir "$dir" --bind 127.0.0.1 --port "$(free_port)" --resp-port "$port" \
        --sync never --log-level warn >"$dir/log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 200); do
      [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
      sleep 0.05
    done
    for t in $TESTS; do
      case $t in
        SET) args=(-t set -n "$N"); n=$N ;;
        GET) args=(-t get -n "$N"); n=$N ;;
        INCR) args=(-t incr -n "$N"); n=$N ;;
        MSET) args=(-t mset -n "$N_MSET"); n=$N_MSET ;;
        SET-P16) args=(-t set -P 16 -n $((2 * N))); n=$((2 * N)) ;;
        GET-P16) args=(-t get -P 16 -n $((2 * N))); n=$((2 * N)) ;;
        INCR-P16) args=(-t incr -P 16 -n $((2 * N))); n=$((2 * N)) ;;
        *) echo "resp-cpu: unknown test $t" >&2; exit 2 ;;
      esac
      c0=$(cpu_seconds "$pid")
      # --csv: "test","rps","avg","min","p50","p95","p99","max" (ms).
      csv=$(redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -d "$DATA" -r 100000 --csv "${args[@]}" 2>/dev/null |
        sed -n 2p | tr -d '"')
      c1=$(cpu_seconds "$pid")
      rps=$(cut -d, -f2 <<<"$csv")
      p99=$(cut -d, -f7 <<<"$csv")
      us=$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $n:.2f}')")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$t" "$us" "$rps" "$p99" | tee -a "$OUT"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    rm -rf "$dir"
  done
done
python3 - "$OUT" <<'PY'
import collections, statistics, sys
us, rps, p99 = (collections.defaultdict(list) for _ in range(3))
for line in open(sys.argv[1]):
    _, server, test, u, r, p = line.rstrip("\n").split("\t")
    us[(test, server)].append(float(u))
    rps[(test, server)].append(float(r or 0))
    p99[(test, server)].append(float(p or 0))
for key in sorted(us):
    print(f"{key[0]:8s} {key[1]:36s} {statistics.median(us[key]):7.2f} us/op {us[key]}  "
          f"{statistics.median(rps[key]):9.0f} ops/s  p99 {statistics.median(p99[key]):.2f} ms")
PY
