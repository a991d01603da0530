#!/usr/bin/env bash
# Server CPU per request of MantisDB servers that run side by side, each
# filled by the same SET phase first (so a GET finds the state that phase
# left: under --sync always as under never), then tested in alternating
# rounds:
#
#   scripts/resp-cpu-sync.sh "always=./mantisdb-rust --sync always" "never=./mantisdb-rust --sync never"
#   TESTS="set get" ROUNDS=5 scripts/resp-cpu-sync.sh "old=/tmp/mantisdb-old --sync always" "new=./mantisdb-rust --sync always"
#
# Each argument is NAME=BINARY [FLAGS...]. All servers are started first
# (fresh data each), filled with redis-benchmark -c 50 -d 100 -r 100000
# -n FILL -t set, then every round runs each test (redis-benchmark -c 50
# -d 100 -r 100000 -n N -t TEST) against each server, the order rotating
# from round to round. CPU per request is the server's utime + stime
# (/proc/PID/stat) during the test over its requests. With SYSCALLS=1,
# `perf stat` also counts the server's system calls per request (read,
# epoll_pwait, futex, all) and its context switches.
#
# Environment: ROUNDS (3), FILL (150000, the SET phase of make bench-resp
# under always), N (300000), TESTS ("get"; any redis-benchmark -t name),
# P (1: requests per pipeline of the tests, redis-benchmark -P).
set -euo pipefail
ROUNDS=${ROUNDS:-3}
FILL=${FILL:-150000}
N=${N:-300000}
TESTS=${TESTS:-get}
P=${P:-1}
[ $# -gt 0 ] || { echo "usage: $0 NAME=BINARY [FLAGS]..." >&2; exit 2; }
work=$(mktemp -d)
names=()
declare -A pid port
cleanup() {
  for n in "${names[@]}"; do kill "${pid[$n]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=scripts/proc-lib.sh
. "$(dirname "$0")/proc-lib.sh"
for arg in "$@"; do
  name=${arg%%=*}
  read -r -a cmd <<<"${arg#*=}"
  dir=$(mktemp -d -p "$work")
  port[$name]=$(free_port)
  "${cmd[@]}" --data-dir "$dir" --bind 127.0.0.1 --port "$(free_port)" --resp-port "${port[$name]}" \
    --log-level warn >"$dir/log" 2>&1 &
  pid[$name]=$!
  names+=("$name")
done
for n in "${names[@]}"; do
  for _ in $(seq 200); do
    [ "$(redis-cli -p "${port[$n]}" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
  done
  c0=$(cpu_seconds "${pid[$n]}")
  redis-benchmark -h 127.0.0.1 -p "${port[$n]}" -c 50 -d 100 -r 100000 -n "$FILL" -t set -q >/dev/null 2>&1
  c1=$(cpu_seconds "${pid[$n]}")
  echo "fill $n: $(redis-cli -p "${port[$n]}" dbsize) keys, $(python3 -c "print(f'{($c1 - $c0) * 1e6 / $FILL:.1f}')") us/SET"
done
echo "machine: $(nproc) vCPU, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'round\ttest\tserver\tus/op\tops/s\tp50_ms\tp99_ms\n'
for round in $(seq "$ROUNDS"); do
  k=$(((round - 1) % ${#names[@]}))
  order=("${names[@]:k}" "${names[@]:0:k}")
  for t in $TESTS; do
    for n in "${order[@]}"; do
      if [ -n "${SYSCALLS:-}" ]; then
        perf stat -x, -o "$work/perf" -p "${pid[$n]}" \
          -e raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,context-switches &
        perfpid=$!
        sleep 0.2
      fi
      c0=$(cpu_seconds "${pid[$n]}")
      # --csv: "test","rps","avg","min","p50","p95","p99","max" (ms).
      csv=$(redis-benchmark -h 127.0.0.1 -p "${port[$n]}" -c 50 -d 100 -r 100000 -n "$N" -t "$t" -P "$P" --csv 2>/dev/null |
        sed -n 2p | tr -d '"')
      c1=$(cpu_seconds "${pid[$n]}")
      extra=
      if [ -n "${SYSCALLS:-}" ]; then
        kill -INT "$perfpid"
        wait "$perfpid" 2>/dev/null || true
        extra=$(awk -F, -v n="$N" '$1 ~ /^[0-9]/ {e = $3; sub(/.*:(sys_enter_)?/, "", e); printf "\t%s/op %.2f", e, $1 / n}' "$work/perf")
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n' "$round" "$t" "$n" \
        "$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $N:.2f}')")" "$(cut -d, -f2 <<<"$csv")" \
        "$(cut -d, -f5 <<<"$csv")" "$(cut -d, -f7 <<<"$csv")" "$extra"
    done
  done
done
echo "end: load average $(cut -d' ' -f1-3 /proc/loadavg)"
