#!/usr/bin/env bash
# Scale: the challenge server's memory and start-up with 10,000 policies.
# A standalone `mfa-operator webhook --config-dir` loads POLICIES benchmark
# policies (hack/bench/genpolicies, the policies of make bench: three rules
# each, the same three texts in every policy), then the same number of
# policies whose rules share no text (genpolicies -distinct), and
# COMPARE of each for comparison. For each it prints:
#
#   - RSS once loaded and idle (SETTLE seconds after the last policy
#     answers), and the peak RSS of the load in the log;
#   - bytes per policy: (RSS with N policies - RSS with 1) / (N - 1);
#   - exec to /readyz 200, the median of STARTUP_RUNS start-ups
#     (hack/bench/startup), with the CPU time the server used until ready.
#
#   hack/bench/scale/policies.sh     (from the repository root; make build first)
#
# Goals at 10,000 policies (the benchmark's): RSS <= 300 MB, exec to
# /readyz <= 2 s. Both depend on the machine's load: the CPU time to ready
# is the figure that moves least with it.
#
# Environment: BIN (default bin/mfa-operator), TOOLS (a folder holding
# built genpolicies and startup; built here when unset), SCALE_WORK
# (default tmp/scale-policies), POLICIES (default 10000), COMPARE (default
# 1000), STARTUP_RUNS (default 5), SETTLE (default 5).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
# shellcheck source=hack/lib/scale.sh
. "$root/hack/lib/scale.sh"
scale_init policies
POLICIES=${POLICIES:-10000}
COMPARE=${COMPARE:-1000}
STARTUP_RUNS=${STARTUP_RUNS:-5}
SETTLE=${SETTLE:-5}
RSS_GOAL_MB=300
STARTUP_GOAL_MS=2000

tool() { # tool NAME: the path of a built hack/bench tool
  if [ -n "${TOOLS:-}" ] && [ -x "$TOOLS/$1" ]; then
    echo "$TOOLS/$1"
    return
  fi
  mkdir -p "$SCALE_WORK/tools"
  if [ ! -x "$SCALE_WORK/tools/$1" ]; then
    log "building hack/bench/$1"
    go build -o "$SCALE_WORK/tools/$1" "./hack/bench/$1"
  fi
  echo "$SCALE_WORK/tools/$1"
}
genpolicies=$(tool genpolicies)
startup=$(tool startup)

cleanup() { stop_proc webhook 2>/dev/null || true; }
trap cleanup EXIT

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
cpu_ms() { sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($12 + $13) * 1000 / hz }'; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
verdict() { awk -v v="$1" -v g="$2" 'BEGIN { print (v <= g ? "met" : "NOT met") }'; }

# args DIR PORT: the server's command line on config directory DIR.
args() {
  echo webhook --config-dir "$1" --data-dir "$SCALE_WORK/data" --listen "127.0.0.1:$2" --metrics-addr 0 --grpc-addr= \
    --trusted-proxies 127.0.0.1/32 --insecure-cookies
}

# config VARIANT N: a config directory of N policies (shared or distinct).
config() {
  local dir=$SCALE_WORK/config-$1-$2 flags=()
  [ "$1" = distinct ] && flags=(-distinct)
  if [ ! -d "$dir" ]; then
    "$genpolicies" -n "$2" "${flags[@]}" -out "$dir.tmp"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# last_decides PORT N: the last policy is in force (it answers 401 for its
# own host: a second factor is wanted).
last_decides() {
  local name host code
  name=$(printf 'policy-%04d' $(($2 - 1)))
  host=$(printf 'p%04d.example.com' $(($2 - 1)))
  [ "$2" -gt 1 ] || { name=bench host=app.example.com; }
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Original-URL: http://$host/dashboard" \
    -H "X-Original-Method: GET" -H "X-Forwarded-For: 192.0.2.10" -H "X-Auth-Request-Email: bench@example.com" \
    "http://127.0.0.1:$1/auth/apps/$name" || true)
  [ "$code" = 401 ]
}

# loaded_ok PORT: /readyz says the configuration is in force, with no
# object refused.
loaded_ok() { curl -fsS --max-time 5 "http://127.0.0.1:$1/readyz" | grep -q '^ok: bundle '; }

declare -A RSS PEAK READY CPU
# measure_memory VARIANT N
measure_memory() {
  local dir port pid t0 ready_ms
  dir=$(config "$1" "$2")
  port=$(free_port)
  # shellcheck disable=SC2046 # the arguments split on purpose
  start_proc webhook "$BIN" $(args "$dir" "$port")
  pid=$(pid_of webhook)
  t0=$(date +%s%N)
  wait_for webhook "/readyz with $2 policies ($1)" 600 loaded_ok "$port"
  ready_ms=$((($(date +%s%N) - t0) / 1000000))
  CPU[$1-$2]=$(cpu_ms "$pid")
  wait_for webhook "policy $2 of $2 ($1) deciding" 60 last_decides "$port" "$2"
  sleep "$SETTLE"
  RSS[$1-$2]=$(status_kb "$pid" VmRSS)
  PEAK[$1-$2]=$(status_kb "$pid" VmHWM)
  log "$2 policies ($1): ready after ${ready_ms} ms (start_proc's own overhead included), CPU ${CPU[$1-$2]} ms; RSS idle $(mb "${RSS[$1-$2]}") MB, peak $(mb "${PEAK[$1-$2]}") MB"
  stop_proc webhook
}

# measure_startup VARIANT N: the median of STARTUP_RUNS start-ups.
measure_startup() {
  local dir port out
  dir=$(config "$1" "$2")
  port=$(free_port)
  log "exec to /readyz with $2 policies ($1): $STARTUP_RUNS runs"
  # shellcheck disable=SC2046
  out=$("$startup" -runs "$STARTUP_RUNS" -timeout 600s -url "http://127.0.0.1:$port/readyz" -log "$SCALE_WORK/startup-$1-$2.log" -- \
    "$BIN" $(args "$dir" "$port")) || die "start-up with $2 policies ($1) failed; see $SCALE_WORK/startup-$1-$2.log"
  printf '%s\n' "$out" >&2
  READY[$1-$2]=$(sed -n 's/^RESULT .*median_ms=\([0-9.]*\).*/\1/p' <<<"$out")
}

log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (a busy machine makes every figure slower)"
rm -rf "$SCALE_WORK/data"
measure_memory shared 1
for variant in shared distinct; do
  for n in "$COMPARE" "$POLICIES"; do
    measure_memory "$variant" "$n"
    measure_startup "$variant" "$n"
  done
done

per_policy_goal_kb=$(awk -v g="$RSS_GOAL_MB" -v base="${RSS[shared-1]}" -v n="$POLICIES" 'BEGIN { printf "%.1f", (g * 1024 - base) / n }')
for variant in shared distinct; do
  label="benchmark policies"
  [ "$variant" = distinct ] && label="policies with distinct rule texts"
  for n in "$POLICIES" "$COMPARE"; do
    k=$variant-$n
    rss_mb=$(mb "${RSS[$k]}")
    per_kb=$(awk -v a="${RSS[$k]}" -v b="${RSS[shared-1]}" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / (n - 1) }')
    echo "FIGURE challenge server RSS idle, $n $label: $rss_mb MB (peak $(mb "${PEAK[$k]}") MB; 1 policy $(mb "${RSS[shared-1]}") MB) (goal <= $RSS_GOAL_MB MB at $POLICIES: $(verdict "$rss_mb" "$RSS_GOAL_MB"))"
    echo "FIGURE challenge server memory per policy, $n $label: $per_kb KB (goal <= $per_policy_goal_kb KB, the RSS goal's share: $(verdict "$per_kb" "$per_policy_goal_kb"))"
    echo "FIGURE exec to /readyz, $n $label (median of $STARTUP_RUNS): ${READY[$k]} ms (CPU until ready ${CPU[$k]} ms) (goal <= $STARTUP_GOAL_MS ms at $POLICIES: $(verdict "${READY[$k]}" "$STARTUP_GOAL_MS"))"
  done
done
