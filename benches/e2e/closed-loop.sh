#!/usr/bin/env bash
# Closed-loop side by side (quick): Kamailio (TLSF, 2 children) and sipreg on both backends under the same load as the earlier sipreg rows: target on core 0, loadgen (1 worker,
# closed loop, 256 in flight, 10k users, 3 s) on core 1; target CPU summed over its processes.
set -u
cd "$(dirname "$0")/../.."
cargo build --release -q -p sipreg -p sipreg-loadgen
BIN=target/release
OUT=$PWD/results/closed-loop-$(date -u +%Y%m%d-%H%M%S); mkdir -p $OUT
USERS=10000
for n in $(seq 0 $((USERS-1))); do echo "u$n:example.com:plain:pw$n"; done > $OUT/users.txt
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
measure() { # NAME PORT SCENARIO ALG PIDS...
  local name=$1 port=$2 sc=$3 alg=$4; shift 4
  local b=$(ticks "$@")
  taskset -c 1 $BIN/sipreg-loadgen run --target 127.0.0.1:$port --scenario $sc --algorithm $alg --users "u{0..$((USERS-1))}@example.com" --password-template 'pw{n}' --duration 3 --workers 1 --no-pin --max-in-flight 256 --quiet --json $OUT/$name.json > $OUT/$name.txt 2>&1
  local a=$(ticks "$@")
  python3 -c "
import json; o=json.load(open('$OUT/$name.json')); d=o['total']['completed']
f=sum(o['total']['failed'].values())+o['total']['timeouts']
print('| $name | %d | %d | %.2f |' % (o['completed_per_s'], f, ($a-$b)/100*1e6/max(d,1)))"
}
echo "| run | completed/s | failures | target CPU us/op |"
echo "|---|---|---|---|"
for auth in none md5; do
  cfgdir=$OUT/kam-$auth; cfg=$(benches/e2e/kamailio/render.sh $cfgdir 27080 2 $USERS)
  defs=(); [ $auth = md5 ] && defs=(-A WITH_AUTH)
  taskset -c 0 kamailio -x tlsf -X tlsf -m 512 -f $cfg -P $cfgdir/pid "${defs[@]}" > $cfgdir/log 2>&1
  sleep 1.5
  pids=$(pgrep -f "kamailio.*$cfgdir" | tr '\n' ' ')
  sc=register
  measure kamailio-udp-$auth 27080 $sc MD5 $pids
  kill $(cat $cfgdir/pid) 2>/dev/null; sleep 1; pkill -f "kamailio.*$cfgdir"; sleep 0.5
  for backend in uring fallback; do
    args=(--udp 127.0.0.1:27060 --tcp 127.0.0.1:27060 --tls 127.0.0.1:27061 --shards 1 --no-pin --backend $backend --log error --domain example.com --durability none --mgmt off)
    [ $auth = md5 ] && args+=(--credentials $OUT/users.txt --realm example.com)
    taskset -c 0 $BIN/sipreg "${args[@]}" 2> $OUT/sipreg.log & S=$!
    sleep 0.7
    measure sipreg-$backend-udp-$auth 27060 register MD5 $S
    kill $S; wait $S 2>/dev/null
  done
done
