#!/usr/bin/env bash
# REGISTER throughput with digest auth: SIPp drives callgate (release build)
# on loopback; each SIPp "call" is REGISTER → 401 → REGISTER+auth → 200.
# Prints, per offered rate: calls completed, failed, the achieved rate
# and callgate's CPU use. Usage: benches/register_rate.sh [RATE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] && rates=("$@") || rates=(500 1000 2000 3000 4000)
users=1000
port=25060
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q
{
  cat <<CFG
[sip]
listen = ["127.0.0.1:$port"]
transports = ["udp"]
[data]
dir = "$work/data"
[registrar]
max_contacts_per_agent = 5
[security]
trusted = ["127.0.0.0/8"]
CFG
  for i in $(seq -w 1 $users); do
    printf '[[agents]]\nuser = "agent%s"\nsecret = "secret-%s"\n' "$i" "$i"
  done
} > "$work/callgate.toml"
{
  echo SEQUENTIAL
  for i in $(seq -w 1 $users); do
    echo "agent$i;[authentication username=agent$i password=secret-$i]"
  done
} > "$work/users.csv"

RUST_LOG=warn ./target/release/callgate --config "$work/callgate.toml" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 50); do grep -q ready "$work/out" 2>/dev/null && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%8s %8s %8s %8s %10s %10s\n' offered calls ok failed "REGISTER/s" "cpu%"
for rate in "${rates[@]}"; do
  n=$((rate * 10))
  t0=$(date +%s.%N); c0=$(cpu_ticks)
  sipp -sf sipp-scenarios/register_load.xml 127.0.0.1:$port -i 127.0.0.1 -p $((port + 1)) \
    -inf "$work/users.csv" -r "$rate" -m "$n" -l $((rate * 2)) -nostdin -buff_size 4194304 \
    -timeout 120s -trace_stat -stf "$work/stat.csv" >/dev/null 2>&1 || true
  t1=$(date +%s.%N); c1=$(cpu_ticks)
  last=$(tail -1 "$work/stat.csv")
  ok=$(echo "$last" | awk -F';' '{print $16}')      # SuccessfulCall(C)
  failed=$(echo "$last" | awk -F';' '{print $18}')  # FailedCall(C)
  secs=$(echo "$t1 - $t0" | bc -l)
  regs=$(echo "2 * $ok / $secs" | bc -l)
  cpu=$(echo "100 * ($c1 - $c0) / $hz / $secs" | bc -l)
  printf '%8s %8s %8s %8s %10.0f %10.1f\n' "$rate" "$n" "$ok" "$failed" "$regs" "$cpu"
done
