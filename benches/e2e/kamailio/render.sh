#!/usr/bin/env bash
# Renders the Kamailio registrar config and its users table into a run directory.
#
#   benches/e2e/kamailio/render.sh RUNDIR PORT CHILDREN USERS
#
# Writes RUNDIR/kamailio.cfg and RUNDIR/db/{version,users} (db_text tables for htable: users
# u0..u<USERS-1> with passwords pw0.., the generator's defaults). Prints the config path.
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: $0 RUNDIR PORT CHILDREN USERS" >&2
  exit 2
fi
rundir=$1 port=$2 children=$3 users=$4
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$rundir/db"
rundir="$(cd "$rundir" && pwd)"
sed -e "s|@PORT@|$port|g" -e "s|@CHILDREN@|$children|g" -e "s|@RUNDIR@|$rundir|g" \
  "$here/registrar.cfg.in" > "$rundir/kamailio.cfg"
# db_text: first line is the column list; htable's table layout (key_type 0 = string key,
# value_type 0 = string value).
printf 'table_name(str) table_version(int)\nusers:2\n' > "$rundir/db/version"
{
  echo 'key_name(str) key_type(int) value_type(int) key_value(str)'
  awk -v n="$users" 'BEGIN { for (i = 0; i < n; i++) printf "u%d:0:0:pw%d\n", i, i }'
} > "$rundir/db/users"
echo "$rundir/kamailio.cfg"
