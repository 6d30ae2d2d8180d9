#!/usr/bin/env bash
# The benchmark in one command (issue 15). Builds the release binary and
# the RTP sink (examples/rtp_sink.rs), starts callgate on loopback with a
# load config, drives it with SIPp and prints one table:
#
#   REGISTER/s with MD5 digest (and Kamailio's, same load, if installed);
#   calls/s signalling only (answer, immediate BYE); calls/s with a 2 s
#   prompt (callgate hangs up), with receive jitter and loss; concurrent
#   prompt calls (500, 1,000, 2,000, 3,000) held open, jitter and loss
#   measured at the receiver; callgate's CPU % and RSS for each, RSS per
#   live call; SIPp's own CPU; start-up time with 100,000 queued callbacks.
#
# Loopback only; about 3 minutes per run (after the build). Settings
# (environment):
#   QUICK=1       a smoke run of the script itself (seconds, tiny loads)
#   RUNS=N        repeat every measurement N times, print medians (default 1)
#   SECONDS_EACH  length of each rate measurement (default 15)
#   REG_RATE      offered registrations/s (default 12000: above capacity)
#   SIG_RATE      offered signalling-only calls/s (default 3000)
#   PROMPT_RATE   offered 2 s prompt calls/s (default 1000)
#   CONCURRENT    concurrent call counts (default "500 1000 2000 3000")
#   CALLBACKS     queued callbacks for the start-up time (default 100000)
#   FLOOD=1       instead: RSS every 5 s through a 60 s REGISTER flood at
#                 REG_RATE, then a 60 s signalling-only call run at SIG_RATE
#                 (memory must not follow the rate of transactions)
#   BENCH_PORT    first of the loopback ports used (default 25060)
#   CALLGATE_BIN  measure this binary instead of building one (before/after;
#                 the RTP sink already built is used as it is)
# Rates above capacity show the maximum as the achieved rate, with the
# failures it costs; a rate below capacity shows 0 failures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${QUICK:-0}" = 1 ]; then
  secs=${SECONDS_EACH:-3}; reg_rate=${REG_RATE:-300}; sig_rate=${SIG_RATE:-100}
  prompt_rate=${PROMPT_RATE:-50}; concurrent=${CONCURRENT:-"20 50"}
  callbacks=${CALLBACKS:-2000}; measure=3
else
  secs=${SECONDS_EACH:-15}; reg_rate=${REG_RATE:-12000}; sig_rate=${SIG_RATE:-3000}
  prompt_rate=${PROMPT_RATE:-1000}; concurrent=${CONCURRENT:-"500 1000 2000 3000"}
  callbacks=${CALLBACKS:-100000}; measure=10
fi
runs=${RUNS:-1}
users=1000
port=${BENCH_PORT:-25060}; sipp_port=$((port + 1)); kam_port=$((port + 10)); sink_port=$((port + 3940))
ramp_rate=500
hz=$(getconf CLK_TCK)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for t in sipp sox sqlite3; do
  command -v "$t" >/dev/null || { echo "benches/run.sh needs $t" >&2; exit 1; }
done
echo "building (release)…" >&2
if [ -n "${CALLGATE_BIN:-}" ] && { [ "${FLOOD:-0}" = 1 ] || [ -x "$root/target/release/examples/rtp_sink" ]; }; then
  bin=$CALLGATE_BIN
elif [ -n "${CALLGATE_BIN:-}" ]; then
  cargo build --release -q --example rtp_sink
  bin=$CALLGATE_BIN
else
  cargo build --release -q --bin callgate --example rtp_sink
  bin=$root/target/release/callgate
fi
sink=$root/target/release/examples/rtp_sink

# ---- the load config -------------------------------------------------------
mkdir -p "$work/prompts" "$work/flows"
for f in prompts/*.wav; do ln -s "$root/$f" "$work/prompts/"; done
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$work/prompts/bench_2s.wav" synth 2 sine 440 vol 0.3
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$work/prompts/bench_long.wav" synth 120 sine 440 vol 0.3
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
next = "end"
on_at_capacity = "end"
on_duplicate = "end"
[blocks.end]
type = "disconnect"
FLOW
{
  cat <<CFG
[sip]
listen = ["127.0.0.1:$port"]
transports = ["udp"]
max_calls = 20000
[rtp]
port_min = 30000
port_max = 45999
# SIPp sends no media: the RTP timeout must not end the calls.
timeout_s = 600
realtime_pacer = true
[http]
listen = "127.0.0.1:0"
[data]
dir = "$work/data"
[prompts]
dir = "$work/prompts"
[flows]
dir = "$work/flows"
[security]
trusted = ["127.0.0.0/8"]
max_requests_per_source_per_s = 0
[registrar]
max_contacts_per_agent = 5
[dialer]
country = "US"
[[queues]]
name = "callbacks"
max_contacts = $((callbacks + 10))
[[numbers]]
number = "4000"
flow = "ani"
[[test_numbers]]
number = "7100"
prompt = "bench_2s"
hangup_after_prompt = true
[[test_numbers]]
number = "7200"
prompt = "bench_long"
max_seconds = 300
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

# ---- helpers ---------------------------------------------------------------
cg_pid=
start_callgate() {
  RUST_LOG=warn "$bin" --config "$work/callgate.toml" > "$work/cg.out" 2> "$work/cg.err" &
  cg_pid=$!; pids+=("$cg_pid")
  for _ in $(seq 600); do grep -q ready "$work/cg.out" 2>/dev/null && return 0; sleep 0.05; done
  echo "callgate did not start:" >&2; cat "$work/cg.err" >&2; exit 1
}
stop_callgate() {
  kill "$cg_pid" 2>/dev/null || true
  wait "$cg_pid" 2>/dev/null || true
}
# CPU ticks of a process and, for Kamailio, of its worker children.
ticks() {
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
now() { date +%s.%N; }
pct() { echo "scale=1; 100 * $1 / $hz / $2" | bc -l; }

# The last value of column NAME of a SIPp statistics file (found by its
# header: the columns differ between scenarios).
stat_col() {
  awk -F';' -v col="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == col) c = i; next}
    {v = $c} END {print v + 0}' "$1" 2>/dev/null || echo 0
}

# sipp NAME ARGS…: runs SIPp in the foreground; afterwards $ok, $failed
# (from its statistics file) and $sipp_cpu (its CPU %) are set.
run_sipp() {
  local name=$1; shift
  rm -f "$work/$name.csv"
  local t0 t1
  t0=$(now)
  /usr/bin/time -f "%U %S" -o "$work/$name.time" \
    sipp "$@" -i 127.0.0.1 -p $sipp_port -nostdin -buff_size 8388608 \
    -trace_stat -stf "$work/$name.csv" >/dev/null 2>"$work/$name.err" || true
  t1=$(now)
  ok=$(stat_col "$work/$name.csv" 'SuccessfulCall(C)')
  failed=$(stat_col "$work/$name.csv" 'FailedCall(C)')
  sipp_cpu=$(tail -1 "$work/$name.time" | awk -v s="$(echo "$t1 - $t0" | bc -l)" '{printf "%.0f", 100 * ($1 + $2) / s}')
  sipp_secs=$(echo "$t1 - $t0" | bc -l)
}

# Numbers are kept per run (the table shows their median); text (RSS
# before→after) is the last run's.
declare -A results
record() { results["$1|$2"]="${results["$1|$2"]:-} $3"; }
note() { results["$1|$2"]=" $3"; }
median() {
  tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR+1)/2]; else printf "%g\n", (v[NR/2] + v[NR/2+1]) / 2}'
}

# ---- measurements ------------------------------------------------------------
register_rate() {
  local n=$((reg_rate * secs)) c0 c1 t0 t1 r0 r1
  r0=$(rss_mb "$cg_pid"); c0=$(ticks "$cg_pid"); t0=$(now)
  run_sipp reg -sf sipp-scenarios/register_load.xml 127.0.0.1:$port -inf "$work/users.csv" \
    -r "$reg_rate" -m "$n" -l $((reg_rate * 2)) -timeout $((secs * 3))s
  c1=$(ticks "$cg_pid"); t1=$(now); r1=$(rss_mb "$cg_pid")
  local s; s=$(echo "$t1 - $t0" | bc -l)
  record "REGISTER/s, MD5 digest: callgate" rate "$(echo "2 * $ok / $s" | bc -l | xargs printf '%.0f')"
  record "REGISTER/s, MD5 digest: callgate" failed "$failed"
  record "REGISTER/s, MD5 digest: callgate" cpu "$(pct $((c1 - c0)) "$s")"
  note "REGISTER/s, MD5 digest: callgate" rss "$r0→$r1"
  record "REGISTER/s, MD5 digest: callgate" sipp "$sipp_cpu"
}

kamailio_rate() {
  command -v kamailio >/dev/null || return 0
  kamailio -f benches/kamailio-registrar.cfg -DD -E -l udp:127.0.0.1:$kam_port \
    > "$work/kam.out" 2>&1 &
  local kp=$!; pids+=("$kp")
  sleep 1.5
  local kids; kids=$(ps -o pid= --ppid "$kp" | xargs)
  local n=$((reg_rate * secs)) c0 c1 t0 t1
  c0=$(ticks "$kp" $kids); t0=$(now)
  run_sipp kam -sf sipp-scenarios/register_load.xml 127.0.0.1:$kam_port -inf "$work/users.csv" \
    -r "$reg_rate" -m "$n" -l $((reg_rate * 2)) -timeout $((secs * 3))s
  c1=$(ticks "$kp" $kids); t1=$(now)
  local rss=0 p; for p in $kp $kids; do rss=$(echo "$rss + $(rss_mb "$p")" | bc -l); done
  kill "$kp" 2>/dev/null || true; wait "$kp" 2>/dev/null || true
  local s; s=$(echo "$t1 - $t0" | bc -l)
  record "REGISTER/s, MD5 digest: Kamailio" rate "$(echo "2 * $ok / $s" | bc -l | xargs printf '%.0f')"
  record "REGISTER/s, MD5 digest: Kamailio" failed "$failed"
  record "REGISTER/s, MD5 digest: Kamailio" cpu "$(pct $((c1 - c0)) "$s")"
  note "REGISTER/s, MD5 digest: Kamailio" rss "$(printf '%.0f' "$rss") (sum of procs)"
  record "REGISTER/s, MD5 digest: Kamailio" sipp "$sipp_cpu"
}

signalling_rate() {
  local n=$((sig_rate * secs)) c0 c1 t0 t1 r0 r1
  r0=$(rss_mb "$cg_pid"); c0=$(ticks "$cg_pid"); t0=$(now)
  run_sipp sig -sf sipp-scenarios/bench_call_hold.xml -s 7200 127.0.0.1:$port -key sinkport $sink_port \
    -d 0 -r "$sig_rate" -m "$n" -l $((sig_rate * 3)) -timeout $((secs * 3))s -recv_timeout 10000
  c1=$(ticks "$cg_pid"); t1=$(now); r1=$(rss_mb "$cg_pid")
  local s; s=$(echo "$t1 - $t0" | bc -l)
  record "calls/s, signalling only" rate "$(echo "$ok / $s" | bc -l | xargs printf '%.0f')"
  record "calls/s, signalling only" failed "$failed"
  record "calls/s, signalling only" cpu "$(pct $((c1 - c0)) "$s")"
  note "calls/s, signalling only" rss "$r0→$r1"
  record "calls/s, signalling only" sipp "$sipp_cpu"
}

# Starts the sink; $1 from, $2 to, $3 until (seconds after now).
start_sink() {
  "$sink" --bind 127.0.0.1:$sink_port --from "$1" --to "$2" --until "$3" > "$work/sink.out" 2>&1 &
  sink_pid=$!; pids+=("$sink_pid")
  for _ in $(seq 100); do grep -q ready "$work/sink.out" 2>/dev/null && return 0; sleep 0.02; done
}
sink_value() { grep -o "$1=[0-9.]*" "$work/sink.out" | tail -1 | cut -d= -f2; }
record_sink() {
  record "$1" p50 "$(sink_value d_p50_ms)"
  record "$1" p99 "$(sink_value d_p99_ms)"
  record "$1" max "$(sink_value d_max_ms)"
  record "$1" loss "$(sink_value loss_pct)"
}

prompt_rate_run() {
  local n=$((prompt_rate * secs)) c0 c1 t0 t1 r0 r1
  start_sink 1 $((secs + 2)) $((secs * 3 + 10))
  r0=$(rss_mb "$cg_pid"); c0=$(ticks "$cg_pid"); t0=$(now)
  run_sipp prompt -sf sipp-scenarios/bench_call_prompt.xml -s 7100 127.0.0.1:$port -key sinkport $sink_port \
    -r "$prompt_rate" -m "$n" -l $((prompt_rate * 4)) -timeout $((secs * 3))s -recv_timeout 15000
  c1=$(ticks "$cg_pid"); t1=$(now); r1=$(rss_mb "$cg_pid")
  kill -TERM "$sink_pid" 2>/dev/null || true
  wait "$sink_pid" 2>/dev/null || true
  local s; s=$(echo "$t1 - $t0" | bc -l)
  local row="calls/s, 2 s prompt"
  # The last calls end 2 s after they start: rate over the load phase.
  record "$row" rate "$(echo "$ok / ($s - 2)" | bc -l | xargs printf '%.0f')"
  record "$row" failed "$failed"
  record "$row" cpu "$(pct $((c1 - c0)) "$s")"
  note "$row" rss "$r0→$r1"
  record "$row" sipp "$sipp_cpu"
  record_sink "$row"
}

concurrent_run() {
  local n=$1
  local ramp=$(( (n + ramp_rate - 1) / ramp_rate ))
  local from=$((ramp + 2)) to=$((ramp + 2 + measure))
  local hold_ms=$(( (to + 1) * 1000 ))
  local r0; r0=$(rss_mb "$cg_pid")
  start_sink "$from" "$to" $((to + 30))
  run_sipp "conc$n" -sf sipp-scenarios/bench_call_hold.xml -s 7200 127.0.0.1:$port -key sinkport $sink_port \
    -d "$hold_ms" -r $ramp_rate -m "$n" -l "$n" -timeout $((to + 60))s -recv_timeout 20000 &
  local sp=$!
  sleep "$from"
  local c0 t0 c1 t1 r1
  c0=$(ticks "$cg_pid"); t0=$(now)
  sleep "$measure"
  c1=$(ticks "$cg_pid"); t1=$(now); r1=$(rss_mb "$cg_pid")
  wait "$sp" || true
  kill -TERM "$sink_pid" 2>/dev/null || true
  wait "$sink_pid" 2>/dev/null || true
  # SIPp ran in the background (a subshell): its figures from its files.
  ok=$(stat_col "$work/conc$n.csv" 'SuccessfulCall(C)')
  failed=$(stat_col "$work/conc$n.csv" 'FailedCall(C)')
  sipp_cpu=$(tail -1 "$work/conc$n.time" | awk -v s="$(echo "$to + 1 + $ramp" | bc -l)" '{printf "%.0f", 100 * ($1 + $2) / s}')
  local s; s=$(echo "$t1 - $t0" | bc -l)
  local row="concurrent prompt calls: $n"
  record "$row" rate "$ok"
  record "$row" failed "$failed"
  record "$row" cpu "$(pct $((c1 - c0)) "$s")"
  note "$row" rss "$r0→$r1"
  record "$row" perc "$(echo "($r1 - $r0) * 1024 / $n" | bc -l | xargs printf '%.1f')"
  record "$row" sipp "$sipp_cpu"
  record_sink "$row"
}

restart_run() {
  stop_callgate
  local db="$work/data/callgate.sqlite3" ms
  ms=$(($(date +%s) * 1000))
  sqlite3 "$db" <<SQL
DELETE FROM callbacks;
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $callbacks)
INSERT INTO callbacks (id, contact_id, initial_contact_id, queue, number, initial_start_ms,
  created_ms, not_before_ms, expires_ms, max_retries, retry_interval_s, attempts, state,
  state_ms, attributes)
SELECT printf('cb-%07d', i), printf('ct-%07d', i), printf('ct-%07d', i), 'callbacks',
  printf('+1201%07d', 2000000 + i), $ms - i, $ms, $ms + 3600000, $ms + 86400000, 2, 600, 0,
  'queued', $ms, '{}' FROM seq;
SQL
  local t0 t1
  t0=$(now)
  start_callgate
  t1=$(now)
  local queued
  queued=$(sqlite3 "$db" "SELECT COUNT(*) FROM callbacks WHERE state IN ('queued','scheduled')")
  record "start-up with $callbacks queued callbacks" rate "$(echo "$t1 - $t0" | bc -l | xargs printf '%.2f')"
  note "start-up with $callbacks queued callbacks" rss "$(rss_mb "$cg_pid") ($queued pending)"
  stop_callgate
  sqlite3 "$db" "DELETE FROM callbacks"
  start_callgate
}

# RSS every 5 s while SIPp runs "$@" for 60 s.
flood() {
  local name=$1 label=$2; shift 2
  local r0; r0=$(rss_mb "$cg_pid")
  local c0; c0=$(ticks "$cg_pid")
  run_sipp "$name" "$@" &
  local sp=$! t=0 line="$label RSS MB: $r0" max=$r0
  while kill -0 "$sp" 2>/dev/null; do
    sleep 5; t=$((t + 5))
    local r; r=$(rss_mb "$cg_pid")
    line="$line $r"
    max=$(echo "if ($r > $max) $r else $max" | bc -l)
  done
  wait "$sp" || true
  local c1; c1=$(ticks "$cg_pid")
  echo "$line"
  echo "$label: start $r0 MB, max $max MB (+$(echo "$max - $r0" | bc -l) MB), $t s, callgate CPU $(pct $((c1 - c0)) "$t") %"
  echo "$label: SIPp successful $(stat_col "$work/$name.csv" 'SuccessfulCall(C)') failed $(stat_col "$work/$name.csv" 'FailedCall(C)'), SIPp CPU $(tail -1 "$work/$name.time" | awk -v s="$t" '{printf "%.0f", 100 * ($1 + $2) / s}') %"
}

if [ "${FLOOD:-0}" = 1 ]; then
  fsecs=${FLOOD_SECONDS:-60}
  echo "machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg); binary $bin"
  start_callgate
  sleep 2
  flood regflood "REGISTER flood at $reg_rate/s" -sf sipp-scenarios/register_load.xml 127.0.0.1:$port \
    -inf "$work/users.csv" -r "$reg_rate" -m $((reg_rate * fsecs)) -l $((reg_rate * 2)) -timeout ${fsecs}s
  sleep 2
  flood callflood "signalling-only calls at $sig_rate/s" -sf sipp-scenarios/bench_call_hold.xml -s 7200 \
    127.0.0.1:$port -key sinkport $sink_port -d 0 -r "$sig_rate" -m $((sig_rate * fsecs)) \
    -l $((sig_rate * 3)) -timeout ${fsecs}s -recv_timeout 10000
  sleep 40
  echo "40 s after the runs: RSS $(rss_mb "$cg_pid") MB"
  exit 0
fi

# ---- run ---------------------------------------------------------------------
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "callgate $(git rev-parse --short HEAD 2>/dev/null || echo '?'); SIPp, callgate$(command -v kamailio >/dev/null && echo ', Kamailio') and the RTP sink share these cores"
start_callgate
for run in $(seq "$runs"); do
  echo "run $run/$runs…" >&2
  register_rate
  kamailio_rate
  signalling_rate
  prompt_rate_run
  for n in $concurrent; do concurrent_run "$n"; done
  restart_run
done
stop_callgate

rows=("REGISTER/s, MD5 digest: callgate" "REGISTER/s, MD5 digest: Kamailio"
  "calls/s, signalling only" "calls/s, 2 s prompt")
for n in $concurrent; do rows+=("concurrent prompt calls: $n"); done
rows+=("start-up with $callbacks queued callbacks")
echo
[ "$runs" -gt 1 ] && echo "medians of $runs runs"
printf '| %-44s | %14s | %7s | %7s | %9s | %9s | %9s | %7s | %19s | %9s | %6s |\n' \
  figure "achieved" failed "loss %" "p50 ms" "p99 ms" "max ms" "CPU %" "RSS MB" "KiB/call" "SIPp %"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..16})" \
  "---------" "---------" "-----------" "-----------" "-----------" "---------" "---------------------" "-----------" "--------"
for row in "${rows[@]}"; do
  [ -n "${results["$row|rate"]:-}" ] || continue
  val() { local v="${results["$row|$1"]:-}"; if [ -z "$v" ]; then echo "-"; else median "$v"; fi; }
  rate=$(val rate)
  [[ "$row" == start-up* ]] && rate="$rate s"
  rss=${results["$row|rss"]:-" -"}
  printf '| %-44s | %14s | %7s | %7s | %9s | %9s | %9s | %7s | %19s | %9s | %6s |\n' "$row" "$rate" \
    "$(val failed)" "$(val loss)" "$(val p50)" "$(val p99)" "$(val max)" "$(val cpu)" "${rss# }" "$(val perc)" "$(val sipp)"
done
cat <<'NOTE'

achieved: REGISTER/s (two per registration: challenge + credentials), calls/s completed over the run,
  or calls completed for the concurrent rows; failed: SIPp's failed calls (timeouts, unexpected answers).
p50/p99/max: |D| of RFC 3550 §6.4.1 (change in transit time between consecutive packets of a stream),
  all packets, kernel receive timestamps; loss % from sequence numbers, at the receiver.
CPU %: callgate's (100 = one core), over the run or over the held window; RSS: before→after
  (concurrent rows: idle→calls held); KiB/call: RSS growth per live call; SIPp %: the generator's CPU.
NOTE
