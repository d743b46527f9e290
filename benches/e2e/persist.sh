#!/usr/bin/env bash
# Persistence cost, side by side in one run (issue 7): sipreg (io_uring, 1 shard, core 0) with
# durability none (memory only), interval (fsync every 10 ms) and ack (200 OK after fsync),
# driven by sipreg-loadgen (1 worker, core 1, closed loop with IN_FLIGHT outstanding, UDP,
# no auth, 100k users: every registration is a change to persist). Then a restart with the
# bindings on disk, reporting the load rate from sipreg's log.
#
#   benches/e2e/persist.sh [SECONDS] [IN_FLIGHT]
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-5}
INFL=${2:-256}
cargo build --release -q -p sipreg -p sipreg-loadgen
BIN=target/release
OUT=$(mktemp -d /tmp/sipreg-persist-XXXX)
ticks() { awk '{print $14+$15}' /proc/$1/stat 2>/dev/null || echo 0; }
echo "| durability | registrations/s | vs none | failures | sipreg CPU µs/registration |"
echo "|---|---:|---:|---:|---:|"
base=0
for mode in none interval ack; do
  rm -rf $OUT/data
  taskset -c 0 $BIN/sipreg --udp 127.0.0.1:27060 --tcp 127.0.0.1:27060 --tls 127.0.0.1:27061 \
    --shards 1 --no-pin --backend uring --log error --domain example.com --mgmt off \
    --durability $mode --data-dir $OUT/data 2> $OUT/$mode.log & S=$!
  sleep 0.7
  b=$(ticks $S)
  taskset -c 1 $BIN/sipreg-loadgen run --target 127.0.0.1:27060 --scenario register \
    --users 'u{0..99999}@example.com' --duration $SECS --workers 1 --no-pin \
    --max-in-flight $INFL --quiet --json $OUT/$mode.json > $OUT/$mode.txt 2>&1
  a=$(ticks $S)
  kill $S; wait $S 2>/dev/null
  python3 - "$OUT/$mode.json" "$mode" "$a" "$b" "$base" > $OUT/row <<'PY'
import json, sys
o = json.load(open(sys.argv[1])); mode = sys.argv[2]
a, b, base = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
done = o['total']['completed']; rate = o['completed_per_s']
fail = sum(o['total']['failed'].values()) + o['total']['timeouts']
rel = '1.00' if base == 0 else '%.2f' % (rate / base)
print('| %s | %d | %s | %d | %.2f |' % (mode, rate, rel, fail, (a - b) / 100 * 1e6 / max(done, 1)))
print(rate)
PY
  head -1 $OUT/row
  [ $mode = none ] && base=$(tail -1 $OUT/row)
done
# Restart on the ack run's data: the load rate at start.
NO_COLOR=1 taskset -c 0 $BIN/sipreg --udp 127.0.0.1:27060 --tcp 127.0.0.1:27060 --tls 127.0.0.1:27061 \
  --shards 1 --no-pin --log info --domain example.com --mgmt off --durability interval \
  --data-dir $OUT/data 2> $OUT/restart.log & S=$!
sleep 2; kill $S; wait $S 2>/dev/null
grep -ho 'loaded=[0-9]*.*seconds=[0-9.]*' $OUT/restart.log | head -1
rm -rf $OUT
