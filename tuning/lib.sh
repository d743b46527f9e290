# Shared by check.sh and apply.sh: reads tuning/sysctl.d/99-sipreg.conf and decides, per key,
# whether the running value is below the recommendation. Settings are only ever raised (a
# host tuned higher is left alone); kernel.io_uring_disabled must equal the recommendation.
conf_entries() {
  while IFS='=' read -r key want; do
    key="$(echo "$key" | xargs)"; want="$(echo "$want" | xargs)"
    case "$key" in ''|'#'*) continue ;; esac
    echo "$key=$want"
  done < "$1"
}

current_value() {
  tr -s '\t ' ' ' < "/proc/sys/$(echo "$1" | tr . /)" 2>/dev/null | xargs || echo n/a
}

# below KEY CURRENT WANT -> exit 0 when CURRENT needs raising to WANT.
below() {
  local key=$1 cur=$2 want=$3
  [ "$cur" = n/a ] && return 1
  if [ "$key" = kernel.io_uring_disabled ]; then [ "$cur" != "$want" ]; return; fi
  if [ "$key" = net.ipv4.ip_local_port_range ]; then
    set -- $cur; local clo=$1 chi=$2; set -- $want
    [ "$clo" -gt "$1" ] || [ "$chi" -lt "$2" ]; return
  fi
  set -- $cur; local -a c=("$@"); set -- $want; local -a w=("$@")
  local i
  for i in "${!w[@]}"; do
    [ "${c[$i]:-0}" -lt "${w[$i]}" ] 2>/dev/null && return 0
  done
  return 1
}
