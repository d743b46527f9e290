#!/usr/bin/env bash
# Checks for CI (called from .ci/run): the Kamailio registrar config renders and passes
# `kamailio -c` in each variant (no auth, digest MD5, digest SHA-256) when Kamailio is
# installed, else prints a loud SKIP; the callgrind and e2e scripts parse. Also runs the
# tuning scripts in their CI-safe modes.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

bash -n benches/e2e/run.sh benches/e2e/kamailio/render.sh benches/callgrind/run.sh

cfg=$(benches/e2e/kamailio/render.sh "$tmp/kam" 27080 2 10)
grep -q '^listen=udp:127.0.0.1:27080$' "$cfg" || { echo "FAIL: rendered listen line" >&2; fail=1; }
grep -q '@[A-Z]*@' "$cfg" && { echo "FAIL: placeholder left in $cfg" >&2; fail=1; }
[ "$(sed -n 2p "$tmp/kam/db/users")" = "u0:0:0:pw0" ] || { echo "FAIL: users table" >&2; fail=1; }
[ "$(wc -l < "$tmp/kam/db/users")" -eq 11 ] || { echo "FAIL: users table length" >&2; fail=1; }

if command -v kamailio > /dev/null; then
  for defs in "" "-A WITH_AUTH" "-A WITH_AUTH -A WITH_SHA256"; do
    # shellcheck disable=SC2086
    if kamailio -c $defs -f "$cfg" > "$tmp/kam.log" 2>&1; then
      echo "ok: kamailio -c $defs"
    else
      echo "FAIL: kamailio -c $defs" >&2
      cat "$tmp/kam.log" >&2
      fail=1
    fi
  done
else
  echo "################################################################"
  echo "## SKIP: kamailio not installed, its config was not checked   ##"
  echo "## (apt-get install -y kamailio)                              ##"
  echo "################################################################"
fi

tuning/apply.sh --dry-run > "$tmp/apply.log" || { echo "FAIL: tuning/apply.sh --dry-run" >&2; cat "$tmp/apply.log" >&2; fail=1; }
tuning/check.sh --report-only > "$tmp/check.log" || { echo "FAIL: tuning/check.sh --report-only" >&2; fail=1; }
echo "ok: tuning/apply.sh --dry-run, tuning/check.sh --report-only"
exit $fail
