#!/usr/bin/env bash
# Raises the host settings in tuning/sysctl.d/99-sipreg.conf (idempotent; never lowers a
# value). --dry-run prints what would change and changes nothing.
set -eu
dir="$(cd "$(dirname "$0")" && pwd)"
. "$dir/lib.sh"
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
changes=0
for entry in $(conf_entries "$dir/sysctl.d/99-sipreg.conf" | tr ' ' '_'); do
  key="${entry%%=*}"; want="$(echo "${entry#*=}" | tr '_' ' ')"
  cur="$(current_value "$key")"
  if below "$key" "$cur" "$want"; then
    changes=$((changes + 1))
    if [ "$dry" -eq 1 ]; then echo "would set $key: $cur -> $want"
    else sysctl -q -w "$key=$want" && echo "set $key = $want"; fi
  fi
done
echo "$changes setting(s) $([ "$dry" -eq 1 ] && echo 'would change' || echo changed)"
