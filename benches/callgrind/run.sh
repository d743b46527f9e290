#!/usr/bin/env bash
# Instruction counts per engine operation, stable where wall-clock on a shared 2-core machine
# swings 10-20 %. Builds examples/engine_iters.rs (release profile), runs each case under
# callgrind twice (N1 and N2 operations), collecting only inside the example's `measured_*`
# functions, and reports (Ir(N2) - Ir(N1)) / (N2 - N1): set-up, message building and the
# client's digest computation cancel out.
#
#   benches/callgrind/run.sh [--n1 N] [--n2 N] [--cases "register refresh query digest"] [--enforce]
#                            [--budget-register IR]   (default 5000, the issue-6 goal)
#
# Prints a markdown table and warns when the no-auth REGISTER costs more than the budget; with
# --enforce it then exits 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
N1=2000
N2=6000
CASES="register refresh query digest"
BUDGET=5000
ENFORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --n1) N1="$2"; shift ;;
    --n2) N2="$2"; shift ;;
    --cases) CASES="$2"; shift ;;
    --budget-register) BUDGET="$2"; shift ;;
    --enforce) ENFORCE=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v valgrind > /dev/null; then
  echo "valgrind not found: apt-get install -y valgrind" >&2
  exit 2
fi
cargo build --release -q --example engine_iters
BIN=target/release/examples/engine_iters
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Total Ir collected inside the measured functions for one run.
ir() {
  local out="$TMP/cg.$1.$2"
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*measured_*' \
    "$BIN" "$1" "$2" > /dev/null 2> "$TMP/log"  || { cat "$TMP/log" >&2; exit 1; }
  # "summary:" (or "totals:") carries the total of the first event, Ir.
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

echo "| engine operation | instructions / op | (N1, N2) |"
echo "|---|---|---|"
status=0
for c in $CASES; do
  a=$(ir "$c" "$N1")
  b=$(ir "$c" "$N2")
  per=$(( (b - a) / (N2 - N1) ))
  label=$c
  case $c in
    register) label="no-auth REGISTER, new AOR" ;;
    refresh) label="no-auth REGISTER, refresh of one AOR" ;;
    query) label="query (REGISTER without Contact)" ;;
    digest) label="digest exchange MD5 (401 + authenticated REGISTER)" ;;
  esac
  echo "| $label | $per | ($N1, $N2) |"
  if [ "$c" = register ] && [ "$per" -gt "$BUDGET" ]; then
    echo "WARNING: no-auth REGISTER costs $per instructions, over the budget of $BUDGET" >&2
    [ "$ENFORCE" = 1 ] && status=1
  fi
done
exit $status
