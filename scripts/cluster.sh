#!/usr/bin/env bash
# Starts a 3-node MantisDB cluster on loopback for a person to try:
# HTTP on 127.0.0.1:8081..8083, the Redis protocol on 127.0.0.1:6381..6383,
# raft on 127.0.0.1:7001..7003, data in
# $CLUSTER_DIR/n1..n3 (default ./cluster-data; kept between runs, so a
# second run restarts the same cluster). Logs go to $CLUSTER_DIR/nX.log.
# Ctrl-C stops every node. Usage: scripts/cluster.sh [server binary]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-./mantisdb-rust}
DIR=${CLUSTER_DIR:-./cluster-data}
ENGINE=${CLUSTER_ENGINE:-rust}
[ -x "$BIN" ] || { echo "no server binary at $BIN (make build-rust, or pass ./mantisdb with CLUSTER_ENGINE=memory)" >&2; exit 2; }
mkdir -p "$DIR"

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the cluster"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

wait_health() {
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node on port $1 did not become healthy; see $DIR/n$2.log" >&2
  return 1
}

for i in 1 2 3; do
  args=(--engine "$ENGINE" --node-id "n$i" --port "808$i" --resp-port "638$i" --raft-addr "127.0.0.1:700$i" --data-dir "$DIR/n$i")
  if [ ! -d "$DIR/n$i/raft" ]; then
    if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join 127.0.0.1:7001); fi
  fi
  "$BIN" "${args[@]}" >>"$DIR/n$i.log" 2>&1 &
  pids+=($!)
  wait_health "808$i" "$i"
done

cat <<TXT

MantisDB cluster of 3 nodes ($ENGINE engine) is up:
  node  http                    redis            raft             data
  n1    http://127.0.0.1:8081   127.0.0.1:6381   127.0.0.1:7001   $DIR/n1
  n2    http://127.0.0.1:8082   127.0.0.1:6382   127.0.0.1:7002   $DIR/n2
  n3    http://127.0.0.1:8083   127.0.0.1:6383   127.0.0.1:7003   $DIR/n3

Try:
  curl -s localhost:8081/api/v1/cluster
  curl -s -X PUT localhost:8082/api/v1/kv/hello -d '{"value":"world"}'
  curl -s 'localhost:8083/api/v1/kv/hello?consistency=stale'
  redis-cli -p 6383 get hello; redis-cli -p 6381 info replication
Logs: $DIR/n1.log .. n3.log. Ctrl-C stops every node; data stays in $DIR.
TXT
wait
