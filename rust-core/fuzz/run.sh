#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_TIME seconds each and prints a summary.
#
# Rust targets: libFuzzer (libfuzzer-sys) built on the stable toolchain with
# the SanitizerCoverage flags cargo-fuzz passes (no nightly, no sanitizer).
# Go targets: go test -fuzz, one target at a time.
#
# Each Rust target's working corpus is target/fuzz-corpus/<target>, started
# from corpus/<target> and regressions/<target>; a failing input is written
# to target/fuzz-artifacts/<target>/ (keep it under regressions/<target>/).
# Logs: target/fuzz-logs/. Exit status: non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_TIME="${FUZZ_TIME:-60}"
RUST_TARGETS="${RUST_TARGETS:-record_decode segment_decode hint_decode reopen abi_calls}"
# Go targets are package:target pairs.
GO_TARGETS="${GO_TARGETS:-./internal/api:FuzzBatchDecode ./internal/api:FuzzTxnDecode ./internal/api:FuzzKeyRoutes \
./internal/api:FuzzScanQuery ./internal/api:FuzzBatchHTTP ./internal/api:FuzzTxnHTTP ./internal/api:FuzzRequestHeaders \
./internal/resp:FuzzRequest}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$PWD/target"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
bins=()
for t in $RUST_TARGETS; do bins+=(--bin "$t"); done
# --target keeps RUSTFLAGS off build scripts and proc macros.
nice cargo build --locked --release --features libfuzzer --target "$TRIPLE" "${bins[@]}"
mkdir -p target/fuzz-logs
summary=()
failed=0
for t in $RUST_TARGETS; do
  work="target/fuzz-corpus/$t"
  art="target/fuzz-artifacts/$t/"
  mkdir -p "$work" "$art"
  cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
  if [ -d "regressions/$t" ]; then cp -n regressions/"$t"/* "$work"/ 2>/dev/null || true; fi
  log="target/fuzz-logs/$t.log"
  echo "== $t: ${FUZZ_TIME}s"
  status=ok
  nice "target/$TRIPLE/release/$t" -max_total_time="$FUZZ_TIME" -print_final_stats=1 \
    -timeout=20 -rss_limit_mb=4096 -max_len=4096 -artifact_prefix="$art" "$work" >"$log" 2>&1 || status=FAILED
  [ "$status" = ok ] || failed=1
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  summary+=("$(printf '%-20s %-6s execs=%-10s execs/s=%-7s %s' "$t" "$status" "${execs:-?}" "${speed:-?}" "${cov:-}")")
  [ "$status" = ok ] || grep -E 'panicked|ERROR|Test unit written' "$log" | head -5 || true
done
cd ../..
for pt in $GO_TARGETS; do
  pkg="${pt%%:*}"
  t="${pt##*:}"
  log="rust-core/fuzz/target/fuzz-logs/$t.log"
  echo "== $t: ${FUZZ_TIME}s"
  status=ok
  nice go test -run '^$' -fuzz "^$t\$" -fuzztime "${FUZZ_TIME}s" "$pkg" >"$log" 2>&1 || status=FAILED
  # Go 1.26's coordinator may end a timed run with a bare "context deadline
  # exceeded" while a worker is mid-input (go.dev/issue/75804): no failing
  # input, nothing to reproduce. Only that exact shape is let through; a
  # written input, a panic or any other failure still fails the run.
  if [ "$status" = FAILED ] && grep -q '^    context deadline exceeded$' "$log" &&
    ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"; then
    status=ok-deadline
  fi
  [ "$status" = ok ] || [ "$status" = ok-deadline ] || failed=1
  last=$(grep -E '^fuzz: elapsed' "$log" | tail -1)
  execs=$(echo "$last" | sed -n 's/.*execs: \([0-9]*\) (\([0-9]*\)\/sec).*/\1/p')
  # The rate on the last line is that of its last interval: average instead.
  secs=$(echo "$last" | sed -n 's/^fuzz: elapsed: \([0-9]*\)m\([0-9]*\)s.*/\1 \2/p' | awk '{print $1*60+$2}')
  [ -n "$secs" ] || secs=$(echo "$last" | sed -n 's/^fuzz: elapsed: \([0-9]*\)s.*/\1/p')
  speed=$([ -n "$execs" ] && [ "${secs:-0}" -gt 0 ] && echo $((execs / secs)) || echo "?")
  interesting=$(echo "$last" | sed -n 's/.*new interesting: \([0-9]*\) (total: \([0-9]*\)).*/new=\1 corpus=\2/p')
  summary+=("$(printf '%-20s %-6s execs=%-10s execs/s=%-7s %s' "$t" "$status" "${execs:-?}" "${speed:-?}" "${interesting:-}")")
  [ "$status" = ok ] || grep -E -- '--- FAIL|Failing input|testdata|deadline' "$log" | head -5 || true
done
echo
echo "Fuzz summary (FUZZ_TIME=${FUZZ_TIME}s per target; logs in rust-core/fuzz/target/fuzz-logs/)"
printf '%s\n' "${summary[@]}"
exit $failed
