#!/usr/bin/env bash
# Side-by-side registrar benchmark on one machine: the loopback UDP ceiling (a recvmmsg/sendmmsg
# echo of the same message sizes), sipreg on each backend (no auth, digest MD5 and SHA-256,
# TCP and TLS), each target pinned to one core and the generator to another.
#
#   benches/e2e/run.sh [--quick] [--seconds N] [--target-core C] [--gen-core G]
#
# Output: results/<date>-<host>.md and .json (one JSON report per run from sipreg-loadgen).
# Target CPU per registration comes from /proc/<pid>/stat (utime + stime) over the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=10
TARGET_CORE=0
GEN_CORE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) SECONDS_PER_RUN=3 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift ;;
    --target-core) TARGET_CORE="$2"; shift ;;
    --gen-core) GEN_CORE="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
cargo build --release -q -p sipreg -p sipreg-loadgen
BIN=target/release
STAMP="$(date -u +%Y%m%d-%H%M%S)-$(hostname)"
OUT=results/$STAMP
mkdir -p results "$OUT"
USERS=10000
CREDS="$OUT/users.txt"
for n in $(seq 0 $((USERS - 1))); do echo "u$n:example.com:plain:pw$n"; done > "$CREDS"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run NAME PORT TRANSPORT SCENARIO [extra loadgen args...] — the target must already listen.
run() {
  local name=$1 pid=$2 port=$3 transport=$4 scenario=$5; shift 5
  local before after
  before=$(cpu_ticks "$pid")
  taskset -c "$GEN_CORE" $BIN/sipreg-loadgen run --target "127.0.0.1:$port" --transport "$transport" \
    --scenario "$scenario" --users "u{0..$((USERS - 1))}@example.com" --duration "$SECONDS_PER_RUN" \
    --workers 1 --no-pin --max-in-flight 256 --quiet --json "$OUT/$name.json" "$@" > "$OUT/$name.txt"
  after=$(cpu_ticks "$pid")
  python3 - "$OUT/$name.json" "$name" $((after - before)) "$HZ" >> "$OUT/table.md" <<'PY'
import json, sys
path, name, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
o = json.load(open(path))
done = o["total"]["completed"]
cpu_us = ticks / hz * 1e6 / done if done else 0
fails = sum(o["total"]["failed"].values()) + o["total"]["timeouts"]
l = o["latency"]
print(f"| {name} | {o['completed_per_s']:,.0f} | {fails} | {o['total']['retransmissions']} | {l['p50_us']} | {l['p99_us']} | {l['p999_us']} | {cpu_us:.2f} | {o['generator_cpu_us_per_op']:.2f} |")
o["target_cpu_us_per_op"] = cpu_us
json.dump(o, open(path, "w"), indent=1)
PY
}

{
  echo "# sipreg end-to-end, $STAMP"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)."
  echo "Target pinned to core $TARGET_CORE, generator (1 worker, closed loop, 256 in flight) to core $GEN_CORE; $SECONDS_PER_RUN s per run, $USERS users."
  echo
  echo "| run | completed/s | failures | retransmits | p50 us | p99 us | p99.9 us | target CPU us/op | generator CPU us/op |"
  echo "|---|---|---|---|---|---|---|---|---|"
} > "$OUT/table.md"

# 1. The ceiling: a plain echo of the same messages.
taskset -c "$TARGET_CORE" $BIN/sipreg-loadgen echo --listen 127.0.0.1:27070 & ECHO=$!
sleep 0.5
run echo-udp $ECHO 27070 udp register
kill $ECHO; wait $ECHO 2>/dev/null || true

# 2. sipreg on each backend.
for backend in uring fallback; do
  for auth in none digest; do
    args=(--udp 127.0.0.1:27060 --tcp 127.0.0.1:27060 --tls 127.0.0.1:27061 --shards 1 --no-pin --backend "$backend" --log warn --domain example.com)
    [ "$auth" = digest ] && args+=(--credentials "$CREDS" --realm example.com)
    taskset -c "$TARGET_CORE" $BIN/sipreg "${args[@]}" 2> "$OUT/sipreg-$backend-$auth.log" & SRV=$!
    sleep 0.7
    if [ "$auth" = none ]; then
      run "sipreg-$backend-udp-noauth" $SRV 27060 udp register
      run "sipreg-$backend-tcp-noauth" $SRV 27060 tcp register --connections 16
      run "sipreg-$backend-tls-noauth" $SRV 27061 tls register --connections 16
    else
      run "sipreg-$backend-udp-md5" $SRV 27060 udp register --algorithm MD5
      run "sipreg-$backend-udp-sha256" $SRV 27060 udp register --algorithm SHA-256
      run "sipreg-$backend-udp-refresh-md5" $SRV 27060 udp refresh --algorithm MD5
    fi
    kill $SRV; wait $SRV 2>/dev/null || true
  done
done
cp "$OUT/table.md" "results/$STAMP.md"
cat "results/$STAMP.md"
