#!/usr/bin/env bash
# Scale-out side by side: 1, 2 and 3 sipreg nodes (1 shard each) sharing one standalone Redis,
# then a local 3-master Redis Cluster, plus the memory backend (1 node) as the reference — all
# in one run on this machine, loopback only, bounded in time.
#
# Load: one sipreg-loadgen per node, closed loop, 256 in flight, each on its own disjoint
# users (so N nodes get N x the offered load); first every user is registered (unmeasured),
# then `refresh` (the RFC 7502 re-registration rate) runs for DURATION seconds. The figure is
# the sum of completed registrations/s; failures and timeouts are summed too. The Redis CPU
# per registration is measured from /proc.
#
# Usage: benches/e2e/redis.sh [DURATION=4] [USERS_PER_NODE=20000]
# Needs redis-server and redis-cli (apt-get install redis-server).
set -u
cd "$(dirname "$0")/../.."
DURATION=${1:-4}
USERS=${2:-20000}
command -v redis-server >/dev/null || { echo "redis-server not installed"; exit 1; }
cargo build --release -q -p sipreg -p sipreg-loadgen
BIN=target/release
OUT=results/redis-$(date -u +%Y%m%d-%H%M%S); mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }

redis() { # PORT [extra args...]
  local port=$1; shift
  mkdir -p "$OUT/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no \
    --dir "$OUT/redis-$port" "$@" > "$OUT/redis-$port/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis on $port did not start"; exit 1
}

redis 27379
SINGLE_PID=${PIDS[-1]}
for p in 27380 27381 27382; do redis $p --cluster-enabled yes --cluster-config-file nodes.conf; done
CLUSTER_PIDS="${PIDS[-3]} ${PIDS[-2]} ${PIDS[-1]}"
redis-cli --cluster create 127.0.0.1:27380 127.0.0.1:27381 127.0.0.1:27382 \
  --cluster-replicas 0 --cluster-yes > "$OUT/cluster-create.log" 2>&1
for _ in $(seq 100); do
  redis-cli -p 27380 cluster info | grep -q cluster_state:ok && break; sleep 0.1
done

run() { # NAME NODES REDIS_PIDS SIPREG_ARGS...
  local name=$1-$2 nodes=$2 rpids=$3; shift 3
  local spids=() lpids=()
  for i in $(seq 0 $((nodes - 1))); do
    $BIN/sipreg --udp 127.0.0.1:$((27160 + i)) --tcp 127.0.0.1:$((27160 + i)) --shards 1 --no-pin \
      --log error --domain example.com --durability none --mgmt off "$@" 2> "$OUT/$name-node$i.log" &
    spids+=($!)
  done
  sleep 1
  # Register every user first (unmeasured), on each node's own users.
  for i in $(seq 0 $((nodes - 1))); do
    $BIN/sipreg-loadgen run --target 127.0.0.1:$((27160 + i)) --scenario refresh --preregister \
      --users "n${i}u{0..$((USERS - 1))}@example.com" --duration 0.2 --workers 1 --no-pin \
      --quiet > /dev/null 2>&1 &
    lpids+=($!)
  done
  wait "${lpids[@]}"; lpids=()
  local b_r; b_r=$(ticks $rpids)
  local b_s; b_s=$(ticks "${spids[@]}")
  for i in $(seq 0 $((nodes - 1))); do
    $BIN/sipreg-loadgen run --target 127.0.0.1:$((27160 + i)) --scenario refresh \
      --users "n${i}u{0..$((USERS - 1))}@example.com" --duration "$DURATION" --workers 1 --no-pin \
      --max-in-flight 256 --quiet --json "$OUT/$name-load$i.json" > "$OUT/$name-load$i.txt" 2>&1 &
    lpids+=($!)
  done
  wait "${lpids[@]}"
  local a_r; a_r=$(ticks $rpids)
  local a_s; a_s=$(ticks "${spids[@]}")
  for p in "${spids[@]}"; do kill "$p"; done
  wait "${spids[@]}" 2>/dev/null
  python3 - "$OUT" "$name" "$nodes" "$((a_r - b_r))" "$((a_s - b_s))" <<'EOF'
import json, sys
out, name, nodes, rticks, sticks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rate = done = fail = 0
for i in range(nodes):
    o = json.load(open(f"{out}/{name}-load{i}.json"))
    rate += o["completed_per_s"]
    done += o["total"]["completed"]
    fail += sum(o["total"]["failed"].values()) + o["total"]["timeouts"]
us = lambda t: t / 100 * 1e6 / max(done, 1)
print(f"| {name} | {nodes} | {rate:,.0f} | {fail} | {us(sticks):.1f} | {us(rticks):.1f} |")
EOF
}

echo "| setup | sipreg nodes | registrations/s (sum) | failures | sipreg CPU us/reg | Redis CPU us/reg |"
echo "|---|---|---|---|---|---|"
run memory 1 ""
for n in 1 2 3; do run redis-single $n "$SINGLE_PID" --redis redis://127.0.0.1:27379/; done
for n in 1 2 3; do
  run redis-cluster $n "$CLUSTER_PIDS" --redis-cluster --redis redis://127.0.0.1:27380/ \
    --redis redis://127.0.0.1:27381/ --redis redis://127.0.0.1:27382/
done
echo "raw reports: $OUT"
