#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 30) each, one at a time, with the seed corpora
# from the shared SIP corpus; prints executions and coverage; non-zero exit on a crash.
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Only stable Rust is available here, so the
# libFuzzer build flags are accepted through RUSTC_BOOTSTRAP=1 and run without ASan
# (`--sanitizer none`): the fuzzed code is safe Rust, where panics are the bugs to find.
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-30}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz/run.sh: SKIP — cargo-fuzz is not installed (cargo install cargo-fuzz)"
  exit 0
fi
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz build --sanitizer none -O >/tmp/sipreg-fuzz-build.log 2>&1; then
  if grep -q "only accepted on the nightly compiler\|unknown unstable option" /tmp/sipreg-fuzz-build.log; then
    echo "fuzz/run.sh: SKIP — this toolchain refuses the libFuzzer flags even with RUSTC_BOOTSTRAP"
    exit 0
  fi
  echo "fuzz/run.sh: the fuzz targets do not build:"
  grep -E "^error" -A6 /tmp/sipreg-fuzz-build.log | head -40
  exit 1
fi
status=0
for target in parse_message deframe digest_header engine_sequence; do
  mkdir -p "corpus/$target"
  out="$(cargo fuzz run "$target" --sanitizer none -O "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 -max_len=8192 2>&1)"
  rc=$?
  execs="$(echo "$out" | grep -o 'stat::number_of_executed_units: *[0-9]*' | grep -o '[0-9]*$')"
  cov="$(echo "$out" | grep -oE 'DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+' | tail -1 | sed 's/DONE[[:space:]]*//')"
  echo "$target: executions=${execs:-?} ${cov:-}"
  if [ $rc -ne 0 ]; then
    echo "$out" | tail -30
    status=1
  fi
done
exit $status
