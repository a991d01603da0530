#!/usr/bin/env bash
# Two MantisDB binaries (A: before, B: after) and redis-server, alternating
# in rounds on the write tests of make bench-resp: each round starts every
# server on fresh data, runs each test against it, and rotates which server
# goes first. Prints one TSV line per run: round, sync, test, server,
# ops/s, p50 ms, p99 ms, server CPU us/op (utime + stime from
# /proc/PID/stat around the run).
#
#   A=/tmp/mantisdb-before B=./mantisdb-rust ROUNDS=3 scripts/bench-write-ab.sh
#
# SYNCS (default "never always"), TESTS (default "incr set mset"), N_NEVER
# and N_ALWAYS (requests per run, default 100000 and 20000), CLIENTS (50),
# DATA (100), KEYSPACE (100000).
set -euo pipefail
A=${A:?A=path of the before binary}
B=${B:-./mantisdb-rust}
ROUNDS=${ROUNDS:-3}
SYNCS=${SYNCS:-never always}
TESTS=${TESTS:-incr set mset}
N_NEVER=${N_NEVER:-100000}
N_ALWAYS=${N_ALWAYS:-20000}
CLIENTS=${CLIENTS:-50}
DATA=${DATA:-100}
KEYSPACE=${KEYSPACE:-100000}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($12 + $13) / t}' <<<"$(cut -d')' -f2- "/proc/$1/stat")"; }

start() { # start SERVER SYNC: sets pid and p
  local dir
  dir=$(mktemp -d -p "$work")
  p=$(port)
  case $1 in
  redis)
    local persist=(--appendonly no)
    [ "$2" = always ] && persist=(--appendonly yes --appendfsync always)
    redis-server --bind 127.0.0.1 --port "$p" --dir "$dir" --save '' "${persist[@]}" --logfile "$dir/log" &
    ;;
  A | B)
    local bin=$A
    [ "$1" = B ] && bin=$B
    "$bin" --data-dir "$dir" --bind 127.0.0.1 --port "$(port)" --resp-port "$p" --sync "$2" --log-level warn >"$dir/log" 2>&1 &
    ;;
  esac
  pid=$!
  for _ in $(seq 200); do
    [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "no PONG from $1" >&2
  return 1
}

printf 'round\tsync\ttest\tserver\tops_per_s\tp50_ms\tp99_ms\tcpu_us_per_op\n'
servers=(A B redis)
for round in $(seq "$ROUNDS"); do
  for sync in $SYNCS; do
    n=$N_NEVER
    [ "$sync" = always ] && n=$N_ALWAYS
    for i in 0 1 2; do
      s=${servers[$(((i + round) % 3))]}
      start "$s" "$sync"
      for t in $TESTS; do
        c0=$(cpu "$pid")
        line=$(redis-benchmark -h 127.0.0.1 -p "$p" -c "$CLIENTS" -d "$DATA" -r "$KEYSPACE" -n "$n" --csv -t "$t" | tail -1)
        c1=$(cpu "$pid")
        # "test","rps","avg","min","p50","p95","p99","max"
        IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"$(tr -d '"' <<<"$line")"
        us=$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN{printf "%.1f", (b - a) * 1e6 / n}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$sync" "$t" "$s" "$rps" "$p50" "$p99" "$us"
      done
      kill "$pid"
      wait "$pid" 2>/dev/null || true
      pid=
    done
  done
done
