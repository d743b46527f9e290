#!/usr/bin/env bash
# Side-by-side registrar benchmark on one machine (issue 6):
#   1. the physical ceiling: a recvmmsg/sendmmsg UDP echo of the same request and reply sizes
#      (`sipreg-loadgen echo`), driven by the same generator;
#   2. sipreg on each backend (io_uring, fallback): UDP no auth, digest MD5 and SHA-256, TCP and
#      TLS with persistent connections;
#   3. Kamailio (Debian package, installed with apt when absent) as the equivalent registrar
#      (benches/e2e/kamailio/registrar.cfg.in: usrloc in memory, digest against the same users),
#      TLSF allocator (-x tlsf -X tlsf), as many UDP/TCP children as cores;
#   4. per target: the zero-failure Registration Rate (`sipreg-loadgen search`), then a run at
#      80 % of it for p50/p99/p99.9, target CPU per registration (/proc/<pid>/stat of the target
#      and its children) and generator CPU;
#   5. memory per binding after registering --aors distinct AORs: sipreg RSS growth / N,
#      Kamailio shared-memory growth / N (core.shmmem over its ctl socket).
# Target and generator are pinned to separate cores (--target-cores, --gen-core); rows where
# the generator used >= 90 % of a core are flagged in the table.
#
#   benches/e2e/run.sh [--quick] [--only "echo sipreg kamailio memory"] [--target-cores 0]
#                      [--gen-core 1] [--kam-children N] [--aors N]
#
# Output: results/<date>-<host>.{json,md,svg} (aggregated by benches/e2e/harness) and the raw
# files in results/<date>-<host>/. A full run takes ~25 min on 2 cores, --quick ~4 min.
set -euo pipefail
cd "$(dirname "$0")/../.."

QUICK=0
ONLY="echo sipreg kamailio memory"
TARGET_CORES=0
GEN_CORE=1
KAM_CHILDREN=$(nproc)
AORS=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY="$2"; shift ;;
    --target-cores) TARGET_CORES="$2"; shift ;;
    --gen-core) GEN_CORE="$2"; shift ;;
    --kam-children) KAM_CHILDREN="$2"; shift ;;
    --aors) AORS="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  STEP=1 PRECISION=0.15 LOAD_SECONDS=3 CONFIRM_SECONDS=2
  [ "$AORS" = 1000000 ] && AORS=100000
else
  STEP=4 PRECISION=0.05 LOAD_SECONDS=10 CONFIRM_SECONDS=8
fi
USERS=10000
want() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------------------------------------
# Every flag of the other programs is in this block, so a CLI change is a one-place edit.
# sipreg (src/main.rs), sipreg-loadgen (loadgen/src/main.rs). sipreg runs memory-only like the
# Kamailio config (usrloc db_mode 0); benches/e2e/persist.sh measures the durable modes.
sipreg_args() { # BACKEND AUTH(none|digest) -> argv
  echo --udp 127.0.0.1:27060 --tcp 127.0.0.1:27060 --tls 127.0.0.1:27061 --shards 1 --no-pin \
    --backend "$1" --log warn --domain example.com --durability none --mgmt off
  [ "$2" = digest ] && echo --credentials "$CREDS" --realm example.com
  return 0
}
SIPREG_UDP=27060 SIPREG_TCP=27060 SIPREG_TLS=27061 ECHO_PORT=27070 KAM_PORT=27080
loadgen_common() { # TARGET_PORT TRANSPORT SCENARIO USERS
  echo --target "127.0.0.1:$1" --transport "$2" --scenario "$3" --users "u{0..$(($4 - 1))}@example.com" \
    --password-template 'pw{n}' --workers 1 --no-pin --max-in-flight 256 --connections 16 --quiet
}
loadgen_search_args() { echo --step "$STEP" --precision "$PRECISION" --duration "$CONFIRM_SECONDS" --min-rate 1000 --max-rate 400000; }
# Kamailio: -x/-X memory managers, -m shared memory MB, -A defines, -P pid file, -u user.
kamailio_start() { # CFG PIDFILE SHM_MB DEFINES... (defines as separate -A args)
  local cfg=$1 pidf=$2 shm=$3; shift 3
  taskset -c "$TARGET_CORES" kamailio -x tlsf -X tlsf -m "$shm" -f "$cfg" -P "$pidf" "$@" \
    2>> "$OUT/kamailio.log"
}
# ---------------------------------------------------------------------------------------------

STAMP="$(date -u +%Y%m%d-%H%M%S)-$(hostname)"
OUT=$PWD/results/$STAMP
mkdir -p "$OUT"
cargo build --release -q -p sipreg -p sipreg-loadgen -p sipreg-e2e
BIN=target/release
CREDS="$OUT/users.txt"
for n in $(seq 0 $((USERS - 1))); do echo "u$n:example.com:plain:pw$n"; done > "$CREDS"
if want kamailio || want memory; then
  if ! command -v kamailio > /dev/null; then
    echo "installing kamailio (apt)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio > /dev/null
  fi
fi
HZ=$(getconf CLK_TCK)
# Host settings matter (see tuning/README.md: with the default 208 KiB UDP receive buffers the
# loopback echo loses datagrams above ~25k/s): record them with the results.
tuning/check.sh --report-only > "$OUT/host-settings.txt" 2>&1 || true
HOST_TUNED=$(if tuning/check.sh > /dev/null 2>&1; then echo "host tuned (tuning/check.sh ok)"; else echo "host NOT tuned (tuning/check.sh reports low settings, see host-settings.txt)"; fi)

# CPU ticks (utime + stime) of a process and its direct children (Kamailio forks workers).
cpu_ticks() {
  local total=0 p
  for p in "$1" $(ps -o pid= --ppid "$1" 2> /dev/null); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

# measure NAME PID PORT TRANSPORT SCENARIO [extra loadgen args] — the target already listens.
measure() {
  local name=$1 pid=$2 port=$3 transport=$4 scenario=$5; shift 5
  local common rate before after
  # shellcheck disable=SC2207
  common=($(loadgen_common "$port" "$transport" "$scenario" "$USERS"))
  echo "== $name: search" >&2
  if ! taskset -c "$GEN_CORE" $BIN/sipreg-loadgen search "${common[@]}" $(loadgen_search_args) \
    --json "$OUT/$name.search.json" "$@" > "$OUT/$name.search.txt" 2> "$OUT/$name.search.log"; then
    echo "$name: the search's confirmation run had failures (see $OUT/$name.search.txt)" | tee -a "$OUT/notes.txt" >&2
  fi
  rate=$(awk '/^Registration Rate/ {gsub(/[^0-9.]/, "", $7); print $7}' "$OUT/$name.search.txt" | head -1)
  [ -n "$rate" ] || rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["offered_rate"])' "$OUT/$name.search.json" 2> /dev/null || echo 1000)
  rate=$(python3 -c "print(max(100, round(0.8 * float('$rate'))))")
  echo "== $name: run at $rate/s (80 %)" >&2
  before=$(cpu_ticks "$pid")
  taskset -c "$GEN_CORE" $BIN/sipreg-loadgen run "${common[@]}" --rate "$rate" --duration "$LOAD_SECONDS" \
    --json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1 || echo "$name: the 80 % run failed" | tee -a "$OUT/notes.txt" >&2
  after=$(cpu_ticks "$pid")
  python3 -c "print(f'cpu_s={($after - $before) / $HZ:.3f}')" > "$OUT/$name.cpu"
}

stop() { kill "$1" 2> /dev/null || true; wait "$1" 2> /dev/null || true; }

# 1. The ceiling.
if want echo; then
  taskset -c "$TARGET_CORES" $BIN/sipreg-loadgen echo --listen "127.0.0.1:$ECHO_PORT" & ECHO=$!
  sleep 0.5
  measure echo-udp $ECHO $ECHO_PORT udp register
  stop $ECHO
fi

# 2. sipreg on each backend. A fresh process per target: bindings, nonces and lockouts left by
# an overloaded search step (e.g. users locked out after stale-nonce retries) must not carry
# over into the next target.
sipreg_measure() { # BACKEND AUTH NAME PORT TRANSPORT [extra loadgen args]
  local backend=$1 auth=$2 name=$3; shift 3
  # shellcheck disable=SC2046
  taskset -c "$TARGET_CORES" $BIN/sipreg $(sipreg_args "$backend" "$auth") 2> "$OUT/$name.server.log" & SRV=$!
  sleep 0.7
  measure "$name" $SRV "$@"
  stop $SRV
}
if want sipreg; then
  for b in uring fallback; do
    sipreg_measure $b none "sipreg-$b-udp-noauth" $SIPREG_UDP udp register
    sipreg_measure $b none "sipreg-$b-tcp-noauth" $SIPREG_TCP tcp register
    sipreg_measure $b none "sipreg-$b-tls-noauth" $SIPREG_TLS tls register
    sipreg_measure $b digest "sipreg-$b-udp-md5" $SIPREG_UDP udp register --algorithm MD5
    sipreg_measure $b digest "sipreg-$b-udp-sha256" $SIPREG_UDP udp register --algorithm SHA-256
  done
fi

# 3. Kamailio. Its TLS module is not set up here (see benches/e2e/README.md).
kam_run() { # VARIANT(noauth|md5|sha256) SHM_MB -> sets KAM (master pid)
  local defs=()
  case $1 in
    md5) defs=(-A WITH_AUTH) ;;
    sha256) defs=(-A WITH_AUTH -A WITH_SHA256) ;;
  esac
  rm -f "$OUT/kam/kamailio.pid"
  kamailio_start "$KAM_CFG" "$OUT/kam/kamailio.pid" "$2" "${defs[@]}"
  for _ in $(seq 50); do [ -s "$OUT/kam/kamailio.pid" ] && break; sleep 0.1; done
  KAM=$(cat "$OUT/kam/kamailio.pid")
  sleep 0.5
}
kam_stop() { kill "$KAM" 2> /dev/null || true; for _ in $(seq 50); do kill -0 "$KAM" 2> /dev/null || break; sleep 0.1; done; }
if want kamailio || want memory; then
  KAM_CFG=$(benches/e2e/kamailio/render.sh "$OUT/kam" $KAM_PORT "$KAM_CHILDREN" $USERS)
fi
if want kamailio; then
  # A fresh instance per variant: the generator's Call-IDs repeat across runs with CSeq starting
  # again at 1, which Kamailio refuses (500) for bindings an earlier run left.
  for variant in noauth tcp md5 sha256; do
    kam_run "${variant/tcp/noauth}" 256
    case $variant in
      noauth) measure kamailio-udp-noauth "$KAM" $KAM_PORT udp register ;;
      tcp) measure kamailio-tcp-noauth "$KAM" $KAM_PORT tcp register ;;
      md5) measure kamailio-udp-md5 "$KAM" $KAM_PORT udp register --algorithm MD5 ;;
      sha256) measure kamailio-udp-sha256 "$KAM" $KAM_PORT udp register --algorithm SHA-256 ;;
    esac
    kam_stop
  done
fi

# 5. Memory per binding: register AORS distinct AORs once (storm scenario) on each registrar.
if want memory; then
  storm_seconds=$((AORS / 25000 + 1))
  storm() { # PORT LOG
    # shellcheck disable=SC2046
    taskset -c "$GEN_CORE" $BIN/sipreg-loadgen run $(loadgen_common "$1" udp storm "$AORS") \
      --duration "$storm_seconds" > "$2" 2>&1 || true
  }
  rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
  # shellcheck disable=SC2046
  taskset -c "$TARGET_CORES" $BIN/sipreg $(sipreg_args fallback none) 2> "$OUT/sipreg-memory.log" & SRV=$!
  sleep 0.7
  before=$(rss_bytes $SRV)
  storm $SIPREG_UDP "$OUT/sipreg-memory.txt"
  after=$(rss_bytes $SRV)
  stop $SRV
  done_n=$(awk '/^completed/ {print $2; exit}' "$OUT/sipreg-memory.txt")
  printf 'sipreg\t%s\t%s\n' "${done_n:-0}" $((after - before)) >> "$OUT/memory.tsv"

  shm_used() { kamcmd -s "unix:$OUT/kam/kamailio_ctl" core.shmmem 2> /dev/null | awk '/^[[:space:]]*used:/ {print $2}'; }
  kam_run noauth $((AORS / 1000 + 256))
  before=$(shm_used)
  storm $KAM_PORT "$OUT/kamailio-memory.txt"
  after=$(shm_used)
  kam_stop
  done_n=$(awk '/^completed/ {print $2; exit}' "$OUT/kamailio-memory.txt")
  printf 'kamailio\t%s\t%s\n' "${done_n:-0}" $((${after:-0} - ${before:-0})) >> "$OUT/memory.tsv"
fi

MACHINE="Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), $(kamailio -v 2> /dev/null | head -1 | cut -d' ' -f2-3 || true). Target pinned to cores $TARGET_CORES, generator (1 worker, open loop) to core $GEN_CORE; Kamailio with $KAM_CHILDREN children, TLSF; search steps ${STEP} s, precision $PRECISION; $USERS users; memory after $AORS AORs; $HOST_TUNED."
$BIN/sipreg-e2e "$OUT" "$MACHINE" "results/$STAMP"
[ -f "$OUT/notes.txt" ] && { echo; echo "Notes:"; cat "$OUT/notes.txt"; } | tee -a "results/$STAMP.md"
echo "results/$STAMP.{json,md,svg}"
