#!/usr/bin/env bash
# Memory per callback call: SIPp callers (caller_ani.xml, each from its own
# number) leave N callbacks through a flow that queues a callback from the
# caller's number and hangs up, against a release build on loopback. No
# agent is registered, so every callback stays pending (it is state callgate
# must keep). Prints callgate's RSS every 1,000 calls, then after a restart
# on the same database (the memory the pending callbacks themselves need).
# Usage: benches/callback_memory.sh [CALLS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-10000}
rate=${2:-200}
port=25160
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q
mkdir -p "$work/flows"
cat > "$work/flows/ani.toml" <<'FLOW'
type = "inbound"
start = "set"
[blocks.set]
type = "set_callback_number"
source = "caller_number"
next = "schedule"
on_invalid = "end"
[blocks.schedule]
type = "transfer_to_queue"
mode = "callback"
queue = "callbacks"
initial_delay_s = 3600
max_retries = 2
retry_interval_s = 600
next = "end"
on_at_capacity = "end"
on_duplicate = "end"
[blocks.end]
type = "disconnect"
FLOW
cat > "$work/callgate.toml" <<CFG
[sip]
listen = ["127.0.0.1:$port"]
transports = ["udp"]
max_calls = 5000
[rtp]
port_min = 30000
port_max = 39999
[http]
listen = "127.0.0.1:0"
[data]
dir = "$work/data"
[security]
trusted = ["127.0.0.0/8"]
[flows]
dir = "$work/flows"
[[numbers]]
number = "4000"
flow = "ani"
[[queues]]
name = "callbacks"
max_contacts = $((calls + 10))
dedupe_callbacks = true
[dialer]
country = "US"
CFG

start() {
  RUST_LOG=warn ${CALLGATE_WRAP:-} ./target/release/callgate --config "$work/callgate.toml" > "$work/out" 2> "$work/err" &
  pid=$!
  for _ in $(seq 100); do grep -q ready "$work/out" 2>/dev/null && break; sleep 0.1; done
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }

start
echo "machine: $(nproc) cores; $calls callback calls at $rate/s"
printf '%8s %10s %10s\n' calls "RSS MB" "KB/call"
base=$(rss_mb)
printf '%8s %10s %10s\n' 0 "$base" -
step=1000
done_calls=0
while [ "$done_calls" -lt "$calls" ]; do
  n=$(( calls - done_calls < step ? calls - done_calls : step ))
  # Every caller its own number (the queue dedupes).
  { echo SEQUENTIAL
    for i in $(seq 1 "$n"); do printf '+1201%07d\n' $((2000000 + done_calls + i)); done
  } > "$work/numbers.csv"
  sipp -sf sipp-scenarios/caller_ani.xml -s 4000 127.0.0.1:$port -i 127.0.0.1 -p $((port + 1)) \
    -inf "$work/numbers.csv" -r "$rate" -m "$n" -l 500 -nostdin -buff_size 4194304 \
    -recv_timeout 20000 -timeout 300s >/dev/null 2>&1 || true
  done_calls=$((done_calls + n))
  sleep 1
  now=$(rss_mb)
  printf '%8s %10s %10.2f\n' "$done_calls" "$now" "$(echo "($now - $base) * 1024 / $done_calls" | bc -l)"
done
pending=$(sqlite3 "$work/data/callgate.sqlite3" "SELECT COUNT(*) FROM callbacks WHERE state='scheduled'" 2>/dev/null || echo "?")
echo "pending callbacks: $pending"
sleep 40
echo "40 s later (transactions of the last calls expired): RSS $(rss_mb) MB"
kill "$pid"; wait "$pid" 2>/dev/null || true
start
sleep 2
echo "after a restart holding them: RSS $(rss_mb) MB"
