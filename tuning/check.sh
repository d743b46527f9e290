#!/usr/bin/env bash
# Prints current vs recommended host settings for sipreg and exits non-zero when an important
# one is too low. --report-only always exits 0 (CI runs it that way: a CI box is not tuned).
set -u
dir="$(cd "$(dirname "$0")" && pwd)"
. "$dir/lib.sh"
report_only=0
[ "${1:-}" = "--report-only" ] && report_only=1
bad=0
printf '%-32s %-26s %-26s %s\n' setting current recommended status
for entry in $(conf_entries "$dir/sysctl.d/99-sipreg.conf" | tr ' ' '_'); do
  key="${entry%%=*}"; want="$(echo "${entry#*=}" | tr '_' ' ')"
  cur="$(current_value "$key")"
  status=ok
  if [ "$cur" = n/a ]; then status=unknown
  elif below "$key" "$cur" "$want"; then
    status=LOW
    case "$key" in net.core.rmem_max|net.core.wmem_max|net.core.netdev_max_backlog|kernel.io_uring_disabled) bad=1 ;; esac
  fi
  printf '%-32s %-26s %-26s %s\n' "$key" "$cur" "$want" "$status"
done
nofile="$(ulimit -n)"
printf '%-32s %-26s %-26s %s\n' "ulimit -n (this shell)" "$nofile" 1048576 "$([ "$nofile" = unlimited ] || [ "$nofile" -ge 65536 ] && echo ok || echo LOW)"
if [ "$bad" -ne 0 ] && [ "$report_only" -eq 0 ]; then
  echo "check.sh: important settings are below the recommendation (run tuning/apply.sh)" >&2
  exit 1
fi
exit 0
