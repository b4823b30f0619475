#!/usr/bin/env bash
# The performance figures of mfa-operator, all taken in one run on this
# machine, printed side by side and written to docs/performance.md:
#
#   go          Go benchmarks of the decision path (./webhook/, ./internal/policy/, ./internal/session/)
#   http        /auth over loopback against an empty net/http handler: wrk,
#               same connections, alternating runs; requests/s, latency, the
#               server's own CPU time per request; a remembered browser (200)
#               and an unauthenticated request (401)
#   instr       instructions per request of the http section's scenarios,
#               counted by valgrind: the figure that does not move with the
#               machine's load (hack/bench/instr.sh)
#   memory      RSS of the challenge server around many 401 requests, and
#               with 1,000 policies loaded
#   startup     exec of `mfa-operator webhook` (standalone) to /readyz 200
#   controller  1,000 MFAPolicies applied to a local API server until all are
#               Ready and the bundle holds them
#   scale       the long runs (10,000 policies, 100,000 enrolled users): every
#               hack/bench/scale/*.sh in turn; only with SCALE=1 or when named
#               in BENCH_SECTIONS
#
# Settings (environment; defaults in brackets):
#   BENCH_SECTIONS [go http instr memory startup controller]
#   SCALE [0]                   1 adds the scale section
#   BENCH_DURATION [4s]         length of each measured wrk run
#   BENCH_ROUNDS [9]            rounds of (empty handler, empty handler with
#                               /auth's headers, /auth 200, /auth 401)
#   BENCH_CONNECTIONS [50]      wrk connections     BENCH_THREADS [2] wrk threads
#   BENCH_MEM_REQUESTS [500000] 401 requests of the memory test
#   BENCH_POLICIES [1000]       policies of the memory, startup and controller tests
#   BENCH_STARTUP_RUNS [11]     measured start-ups (median)
#   BENCH_DIALECT_RUNS [5]      runs of the front-door dialect benchmarks (median)
#   BENCH_DOC [docs/performance.md]  report written at the end; empty: none
#   BENCH_KEEP [false]          keep the scratch directory (logs, configs)
#   BENCH_COMMIT                the commit named in the report (default: git's
#                               HEAD, noting uncommitted Go changes)
#   BENCH_BIN                   an mfa-operator binary to measure instead of
#                               building bin/mfa-operator from this tree
#   GOMAXPROCS                  passed to both servers when set
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

SECTIONS=${BENCH_SECTIONS:-go http instr memory startup controller}
if [ "${SCALE:-0}" = 1 ] && [[ " $SECTIONS " != *" scale "* ]]; then
  SECTIONS="$SECTIONS scale"
fi
DURATION=${BENCH_DURATION:-4s}
ROUNDS=${BENCH_ROUNDS:-9}
CONNS=${BENCH_CONNECTIONS:-50}
THREADS=${BENCH_THREADS:-2}
MEM_REQUESTS=${BENCH_MEM_REQUESTS:-500000}
POLICIES=${BENCH_POLICIES:-1000}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-11}
DOC=${BENCH_DOC-docs/performance.md}
KEEP=${BENCH_KEEP:-false}
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  KUBEBUILDER_ASSETS=$root/bin/k8s/$(awk '$1 == "k8s.io/client-go" { sub(/^v0\./, "v1.", $2); print $2; exit }' go.mod)
fi

BIN=${BENCH_BIN:-$root/bin/mfa-operator}
TOOLS=$root/bin/bench
LUA=$root/hack/bench/status.lua
HZ=$(getconf CLK_TCK)
POLICY_PATH=/auth/apps/bench
USER_EMAIL=bench@example.com
ORIGINAL_URL=http://app.example.com/dashboard
# The browser's address, as the front door forwards it (the challenge server
# trusts 127.0.0.1 and gives rules no client address when a proxy names none).
CLIENT_IP=192.0.2.10

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf 'bench: %s\n' "$*" >&2
  exit 1
}
wants() { [[ " $SECTIONS " == *" $1 "* ]]; }

failures=()
fail_section() {
  log "FAILED: $*"
  failures+=("$*")
}

# ---------------------------------------------------------------------------
# Processes: every process the script starts is recorded and stopped, by pid.

work=$(mktemp -d "${TMPDIR:-/tmp}/mfa-bench.XXXXXX")
cluster_started=false

# shellcheck source=hack/lib/measure.sh
source "$root/hack/lib/measure.sh"
BG_LOGS=$work/logs

cleanup() {
  local pid
  for pid in "${pids[@]}"; do stop_bg "$pid"; done
  if $cluster_started; then
    DEMO_STATE=$work/cluster "$root/hack/cluster.sh" down >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = true ]; then
    log "scratch directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
mkdir -p "$work/logs"

# free_port picks a port below the ephemeral range (32768-60999 on Linux), so
# that no client connection takes it between the pick and the listen.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# wait_http URL STATUS TIMEOUT_S [CURL_ARGS...]: polls until URL answers STATUS.
wait_http() {
  local url=$1 want=$2 timeout=$3 code
  shift 3
  local deadline=$((SECONDS + timeout))
  while true; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)
    [ "$code" = "$want" ] && return 0
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# start_webhook NAME POLICIES: a standalone challenge server with a fresh
# configuration of POLICIES policies (write_config) and data directory;
# sets STARTED_PID and STARTED_PORT.
start_webhook() {
  local name=$1 config=$work/$1-config data=$work/$1-data port
  write_config "$config" "$2"
  mkdir -p "$data"
  port=$(free_port)
  STARTED_PORT=$port
  start_bg "$name" "$BIN" webhook --config-dir "$config" --data-dir "$data" \
    --listen "127.0.0.1:$port" --metrics-addr 0 --grpc-addr= --trusted-proxies 127.0.0.1/32 --insecure-cookies
  if ! wait_http "http://127.0.0.1:$port/readyz" 200 60; then
    tail -n 20 "$work/logs/$name.log" >&2
    return 1
  fi
}

# ---------------------------------------------------------------------------
# wrk runs. A run's line: requests rps p50_us p99_us cpu_us_per_req
# unexpected socket_errors wrk_cpu_us_per_req other_cpu_pct
#
# other_cpu_pct is the CPU time the rest of the machine used during the run
# (all CPUs' busy time minus the server's and wrk's), in % of the machine:
# near 0 on a quiet machine; a run next to a busy neighbour shows it.

busy_ticks() { # busy time of all CPUs since boot (user nice system irq softirq steal), in clock ticks
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# wrk_run PID URL EXPECTED_STATUS DURATION [HEADER...]
wrk_run() {
  local pid=$1 url=$2 expected=$3 duration=$4
  shift 4
  local args=() h out t0 t1 b0 b1 line wrk_cpu TIMEFORMAT='%U %S'
  for h in "$@"; do args+=(-H "$h"); done
  t0=$(cpu_ticks "$pid")
  b0=$(busy_ticks)
  if ! { time wrk -t"$THREADS" -c"$CONNS" -d"$duration" --timeout 5s -s "$LUA" "${args[@]}" "$url" -- "$expected" \
    >"$work/wrk.out" 2>&1; } 2>"$work/wrk.time"; then
    cat "$work/wrk.out" >&2
    return 1
  fi
  b1=$(busy_ticks)
  t1=$(cpu_ticks "$pid")
  out=$(<"$work/wrk.out")
  wrk_cpu=$(awk '{ print $1 + $2 }' "$work/wrk.time")
  line=$(grep '^RESULT ' <<<"$out") || {
    printf '%s\n' "$out" >&2
    return 1
  }
  awk -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" -v wrk="$wrk_cpu" -v hz="$HZ" -v ncpu="$(nproc)" '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    n = v["requests"]
    secs = v["duration_us"] / 1e6
    bad = v["unexpected"] + (v["requests"] - v["responses"])
    server = (t1 - t0) / hz
    other = (b1 - b0) / hz - server - wrk
    if (other < 0) other = 0
    printf "%d %.0f %d %d %.2f %d %d %.2f %.1f\n", n, n / secs, v["p50_us"], v["p99_us"],
      (n > 0 ? server * 1e6 / n : 0), bad, v["socket_errors"], (n > 0 ? wrk * 1e6 / n : 0), other / (secs * ncpu) * 100
  }' <<<"$line"
}

# auth_headers [COOKIE]: the headers the front door sends with /auth.
auth_headers() {
  printf '%s\n' "X-Original-URL: $ORIGINAL_URL" "X-Original-Method: GET" \
    "X-Forwarded-For: $CLIENT_IP" "X-Auth-Request-Email: $USER_EMAIL"
  # A browser sends the app's own cookies along with ours.
  if [ -n "${1:-}" ]; then printf '%s\n' "Cookie: _ga=GA1.2.3; theme=dark; $1"; fi
}

# auth_status URL [COOKIE]: the status /auth answers to one request with
# the front door's headers.
auth_status() {
  local url=$1 h args=()
  while IFS= read -r h; do args+=(-H "$h"); done < <(auth_headers "${2:-}")
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${args[@]}" "$url" || true
}

fmt_ms() { awk -v us="$1" 'BEGIN { if (us == "") print "n/a"; else printf "%.2fms", us / 1000 }'; }

# median FIELD FILE: the median of a column (fields as in a run's line).
median() {
  awk -v f="$1" '{ print $f }' "$2" | sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) exit
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
sum() { awk -v f="$1" '{ s += $f } END { print s + 0 }' "$2"; }

# ---------------------------------------------------------------------------
# The report: key/value results and text blocks, turned into the table and
# docs/performance.md at the end.

declare -A R
declare -A SECTION_OUT

build() {
  if [ -n "${BENCH_BIN:-}" ]; then
    [ -x "$BIN" ] || die "BENCH_BIN=$BIN is not an executable"
    log "measuring $BIN; building the benchmark tools"
  else
    log "building bin/mfa-operator and the benchmark tools"
    go build -o "$BIN" .
  fi
  local t
  for t in emptyserver startup enroll genpolicies ctrlbench sequential; do
    go build -o "$TOOLS/$t" "./hack/bench/$t"
  done
}

check_tools() {
  local c
  for c in wrk curl oathtool; do
    command -v "$c" >/dev/null || die "$c is missing; run: make deps"
  done
  command -v zbarimg >/dev/null || log "zbarimg is missing: the enrolment uses the key shown on the page, without checking the QR code"
}

write_config() { # write_config DIR N
  "$TOOLS/genpolicies" -n "$2" -out "$1"
}

# ---------------------------------------------------------------------------
# go: micro-benchmarks of the decision path.

section_go() {
  log "go benchmarks: go test -run '^\$' -bench . -benchmem ./webhook/ ./internal/policy/ ./internal/session/"
  local out rc=0
  out=$(go test -run '^$' -bench . -benchmem ./webhook/ ./internal/policy/ ./internal/session/ 2>&1) || rc=$?
  printf '%s\n' "$out"
  SECTION_OUT[go]=$(grep -E '^(Benchmark|goos|goarch|pkg|cpu|ok|FAIL|---)' <<<"$out" || true)
  R[go_rules_1]=$(awk '$1 ~ /^BenchmarkAuthRemembered\/header\/rules=1-/ { print $3; exit }' <<<"$out")
  R[go_rules_100]=$(awk '$1 ~ /^BenchmarkAuthRemembered\/header\/rules=100-/ { print $3; exit }' <<<"$out")
  # The front-door dialects for a remembered browser, and their yardsticks:
  # the median of BENCH_DIALECT_RUNS runs (the one above, then only these
  # benchmarks again), since one run of each moves by 20% on a shared
  # machine, enough to flip the goal line.
  local key bench i dialects=$out
  for ((i = 1; i < ${BENCH_DIALECT_RUNS:-5}; i++)); do
    # (Two runs: a -bench pattern with three levels would leave out the
    # benchmarks of fewer.)
    dialects+=$'\n'$({
      go test -run '^$' -benchmem -bench '^Benchmark(EmptyHandler|ExtAuthzRemembered|GRPCCheckRemembered|HTTP|GRPC)$' ./webhook/
      go test -run '^$' -benchmem -bench '^BenchmarkAuthRemembered$/^header$/^rules=10$' ./webhook/
    } 2>&1 | grep '^Benchmark' || true)
  done
  for key in go_empty:EmptyHandler go_auth:AuthRemembered/header/rules=10 go_extauthz:ExtAuthzRemembered \
    go_check:GRPCCheckRemembered go_http_empty:HTTP/empty go_http_auth:HTTP/auth-remembered \
    go_http_extauthz:HTTP/ext-authz-remembered go_grpc_empty:GRPC/empty go_grpc_check:GRPC/check-remembered; do
    bench=${key#*:}
    R[${key%%:*}]=$(awk -v b="Benchmark$bench-" 'index($1, b) == 1 { print $3 }' <<<"$dialects" | sort -g |
      awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
  done
  SECTION_OUT[go]+=$'\n'"(front-door dialects: medians of ${BENCH_DIALECT_RUNS:-5} runs)"
  R[go_rules_10]=$(awk '$1 ~ /^BenchmarkAuthRemembered\/header\/rules=10-/ { print $3; exit }' <<<"$out")
  R[go_ff_hit]=$(awk '$1 ~ /^BenchmarkAuthForwardAuth\/hit-/ { print $3; exit }' <<<"$out")
  R[go_ff_miss]=$(awk '$1 ~ /^BenchmarkAuthForwardAuth\/miss-/ { print $3; exit }' <<<"$out")
  if [ $rc -ne 0 ]; then
    fail_section "go benchmarks (go test exited $rc)"
  elif ! grep -q '^Benchmark' <<<"$out"; then
    fail_section "go benchmarks: no Benchmark functions ran"
  fi
}

# ---------------------------------------------------------------------------
# http: /auth against the empty handler.

section_http() {
  local port eport wpid epid cookie=""
  start_webhook webhook-http 1 || {
    fail_section "http: the challenge server did not become ready"
    return
  }
  wpid=$STARTED_PID port=$STARTED_PORT
  eport=$(free_port)
  start_bg emptyserver "$TOOLS/emptyserver" --listen "127.0.0.1:$eport"
  epid=$STARTED_PID
  wait_http "http://127.0.0.1:$eport/" 200 30 || {
    fail_section "http: the empty server did not start"
    return
  }

  log "enrolling $USER_EMAIL through the challenge pages (oathtool code) for a remembered-browser cookie"
  if cookie=$("$TOOLS/enroll" -v -server "http://127.0.0.1:$port" -policy apps/bench -user "$USER_EMAIL" \
    -client-ip "$CLIENT_IP" -rd "$ORIGINAL_URL" 2>"$work/logs/enroll.log"); then
    local got
    got=$(auth_status "http://127.0.0.1:$port$POLICY_PATH" "$cookie")
    if [ "$got" != 200 ]; then
      fail_section "http: /auth with the enrolled cookie answered $got, not 200"
      cookie=""
    fi
  else
    cat "$work/logs/enroll.log" >&2
    fail_section "http: enrolment through the challenge pages failed (see above); /auth remembered not measured"
    cookie=""
  fi

  # The same empty handler answering with the response headers of a real
  # /auth 200 (X-MFA-User, -Multifactor, -Assertion): what the answer's
  # headers cost on their own, without any decision.
  local hpid="" hport
  if [ -n "$cookie" ]; then
    local args=() hdr
    while IFS= read -r hdr; do args+=(-H "$hdr"); done < <(auth_headers "$cookie")
    local -a answer=()
    mapfile -t answer < <(curl -s -o /dev/null -D - --max-time 5 "${args[@]}" "http://127.0.0.1:$port$POLICY_PATH" |
      tr -d '\r' | grep -i '^x-mfa-' | sed 's/^/-header\n/')
    hport=$(free_port)
    start_bg emptyserver-headers "$TOOLS/emptyserver" --listen "127.0.0.1:$hport" "${answer[@]}"
    hpid=$STARTED_PID
    wait_http "http://127.0.0.1:$hport/" 200 30 || {
      fail_section "http: the empty server with headers did not start"
      hpid=""
    }
  fi
  local got401
  got401=$(auth_status "http://127.0.0.1:$port$POLICY_PATH")
  [ "$got401" = 401 ] || fail_section "http: /auth without a cookie answered $got401, not 401"

  local -a h200 h401
  mapfile -t h200 < <(auth_headers "${cookie:-mfa_remember=none}")
  mapfile -t h401 < <(auth_headers "")
  local aurl="http://127.0.0.1:$eport$POLICY_PATH" burl="http://127.0.0.1:$port$POLICY_PATH"

  local hurl="http://127.0.0.1:${hport:-0}$POLICY_PATH"
  log "warm-up: 2s per scenario"
  wrk_run "$epid" "$aurl" 200 2s "${h200[@]}" >/dev/null || true
  [ -z "$hpid" ] || wrk_run "$hpid" "$hurl" 200 2s "${h200[@]}" >/dev/null || true
  [ -z "$cookie" ] || wrk_run "$wpid" "$burl" 200 2s "${h200[@]}" >/dev/null || true
  wrk_run "$wpid" "$burl" 401 2s "${h401[@]}" >/dev/null || true

  : >"$work/http-A" && : >"$work/http-H" && : >"$work/http-B" && : >"$work/http-C" && : >"$work/ratio-H" && : >"$work/ratio-BH" && : >"$work/ratio-B" && : >"$work/ratio-C"
  local round line order
  local -A rl
  printf '\n%-28s %5s %10s %9s %9s %11s %10s %7s %12s %10s\n' "run (wrk -t$THREADS -c$CONNS -d$DURATION)" round "req/s" p50 p99 "cpu µs/req" unexpected "socket" "wrk µs/req" "others %"
  for round in $(seq "$ROUNDS"); do
    rl=()
    # Each round starts one scenario later (A H B C, H B C A, ...), so
    # that no scenario always runs first or right after another.
    order=(A H B C A H B C)
    for s in "${order[@]:$(((round - 1) % 4)):4}"; do
      case $s in
      A) line=$(wrk_run "$epid" "$aurl" 200 "$DURATION" "${h200[@]}") || line="" ;;
      H)
        [ -n "$hpid" ] || continue
        line=$(wrk_run "$hpid" "$hurl" 200 "$DURATION" "${h200[@]}") || line=""
        ;;
      B)
        [ -n "$cookie" ] || continue
        line=$(wrk_run "$wpid" "$burl" 200 "$DURATION" "${h200[@]}") || line=""
        ;;
      C) line=$(wrk_run "$wpid" "$burl" 401 "$DURATION" "${h401[@]}") || line="" ;;
      esac
      if [ -z "$line" ]; then
        fail_section "http: wrk run $s/$round failed"
        continue
      fi
      echo "$line" >>"$work/http-$s"
      rl[$s]=$line
      # shellcheck disable=SC2086
      set -- $line
      printf '%-28s %5s %10s %9s %9s %11s %10s %7s %12s %10s%s\n' "$(scenario_name $s)" "$round" "$2" "$(fmt_ms "$3")" "$(fmt_ms "$4")" "$5" "$6" "$7" "$8" "$9" \
        "$( [ "$6" = 0 ] && [ "$7" = 0 ] || echo '  INVALID')"
    done
    # The ratios of a round compare runs taken seconds apart, so a machine
    # that slows down or speeds up during the benchmark moves both sides
    # of a ratio alike.
    for s in H B C; do
      [ -n "${rl[A]:-}" ] && [ -n "${rl[$s]:-}" ] || continue
      awk -v a="${rl[A]}" '{ split(a, x, " "); printf "%.4f %.4f\n", $2 / x[2], $5 / x[5] }' <<<"${rl[$s]}" >>"$work/ratio-$s"
    done
    if [ -n "${rl[H]:-}" ] && [ -n "${rl[B]:-}" ]; then
      awk -v a="${rl[H]}" '{ split(a, x, " "); printf "%.4f %.4f\n", $2 / x[2], $5 / x[5] }' <<<"${rl[B]}" >>"$work/ratio-BH"
    fi
  done
  stop_bg "$epid"
  stop_bg "$wpid"
  [ -z "$hpid" ] || stop_bg "$hpid"

  for s in A H B C; do
    [ -s "$work/http-$s" ] || continue
    R[http_${s}_requests]=$(sum 1 "$work/http-$s")
    R[http_${s}_rps]=$(median 2 "$work/http-$s")
    R[http_${s}_p50]=$(median 3 "$work/http-$s")
    R[http_${s}_p99]=$(median 4 "$work/http-$s")
    R[http_${s}_cpu]=$(median 5 "$work/http-$s")
    R[http_${s}_unexpected]=$(($(sum 6 "$work/http-$s") + $(sum 7 "$work/http-$s")))
    R[http_${s}_runs]=$(wc -l <"$work/http-$s")
    R[http_${s}_other]=$(awk '$9 > m { m = $9 } END { print m + 0 }' "$work/http-$s")
    if [ "$s" != A ] && [ -s "$work/ratio-$s" ]; then
      R[http_${s}_rps_ratio]=$(median 1 "$work/ratio-$s")
      R[http_${s}_cpu_ratio]=$(median 2 "$work/ratio-$s")
      R[http_${s}_ratios]=$(awk '{ printf "%s%.2f/%.2f", (NR > 1 ? " " : ""), $1, $2 }' "$work/ratio-$s")
    fi
  done
  if [ -s "$work/ratio-BH" ]; then
    R[http_BH_rps_ratio]=$(median 1 "$work/ratio-BH")
    R[http_BH_cpu_ratio]=$(median 2 "$work/ratio-BH")
  fi
  R[http_ran]=true
}

scenario_name() {
  case $1 in
  A) echo "empty handler (A)" ;;
  H) echo "empty + /auth's headers" ;;
  B) echo "/auth remembered (B)" ;;
  C) echo "/auth 401 unauthenticated" ;;
  E) echo "/ext-authz remembered" ;;
  G0) echo "empty gRPC Check" ;;
  G) echo "gRPC Check remembered" ;;
  esac
}

# shellcheck source=hack/bench/instr.sh
source "$root/hack/bench/instr.sh"

# ---------------------------------------------------------------------------
# memory: RSS around many 401 requests, and with many policies.

section_memory() {
  local port pid
  start_webhook webhook-mem 1 || {
    fail_section "memory: the challenge server did not become ready"
    return
  }
  pid=$STARTED_PID port=$STARTED_PORT
  local -a h401
  mapfile -t h401 < <(auth_headers "")
  local url="http://127.0.0.1:$port$POLICY_PATH" line total=0 bad=0
  R[mem_idle_kb]=$(rss_kb "$pid")
  line=$(wrk_run "$pid" "$url" 401 2s "${h401[@]}") || line="0 0 0 0 0 1 0"
  # shellcheck disable=SC2086
  set -- $line
  R[mem_warm_requests]=$1
  bad=$(($6 + $7))
  R[mem_warm_kb]=$(rss_kb "$pid")
  log "memory: RSS idle $(mb "${R[mem_idle_kb]}") MB, after a ${1}-request warm-up $(mb "${R[mem_warm_kb]}") MB; sending $MEM_REQUESTS 401 requests"
  while [ "$total" -lt "$MEM_REQUESTS" ]; do
    line=$(wrk_run "$pid" "$url" 401 5s "${h401[@]}") || {
      fail_section "memory: wrk failed"
      break
    }
    # shellcheck disable=SC2086
    set -- $line
    total=$((total + $1))
    bad=$((bad + $6 + $7))
  done
  R[mem_requests]=$total
  R[mem_unexpected]=$bad
  R[mem_after_kb]=$(rss_kb "$pid")
  stop_bg "$pid"
  log "memory: after $total requests: $(mb "${R[mem_after_kb]}") MB ($bad unexpected)"

  start_webhook webhook-many "$POLICIES" || {
    fail_section "memory: the challenge server with $POLICIES policies did not become ready"
    return
  }
  pid=$STARTED_PID port=$STARTED_PORT
  local last last_url
  last=$(printf 'policy-%04d' $((POLICIES - 1)))
  # A policy answers only for its own host.
  last_url=$(printf 'http://p%04d.example.com/dashboard' $((POLICIES - 1)))
  local deadline=$((SECONDS + 60))
  until [ "$POLICIES" -le 1 ] || [ "$(ORIGINAL_URL=$last_url auth_status "http://127.0.0.1:$port/auth/apps/$last")" = 401 ] || [ $SECONDS -ge $deadline ]; do
    sleep 0.1
  done
  if [ "$POLICIES" -gt 1 ] && [ "$(ORIGINAL_URL=$last_url auth_status "http://127.0.0.1:$port/auth/apps/$last")" != 401 ]; then
    fail_section "memory: policy apps/$last was not in force after 60s"
  fi
  R[mem_many_kb]=$(rss_kb "$pid")
  stop_bg "$pid"
  log "memory: with $POLICIES policies: $(mb "${R[mem_many_kb]}") MB"
  R[mem_ran]=true
}

# ---------------------------------------------------------------------------
# startup: exec to /readyz 200.

section_startup() {
  local n cfg data port out
  for n in 1 "$POLICIES"; do
    cfg=$work/startup-config-$n
    data=$work/startup-data-$n
    write_config "$cfg" "$n"
    mkdir -p "$data"
    port=$(free_port)
    log "startup with $n policies: $STARTUP_RUNS runs"
    if ! out=$("$TOOLS/startup" -runs "$STARTUP_RUNS" -url "http://127.0.0.1:$port/readyz" -log "$work/logs/startup-$n.log" -- \
      "$BIN" webhook --config-dir "$cfg" --data-dir "$data" --listen "127.0.0.1:$port" --metrics-addr 0 --grpc-addr= \
      --trusted-proxies 127.0.0.1/32 --insecure-cookies); then
      printf '%s\n' "$out"
      fail_section "startup with $n policies"
      continue
    fi
    printf '%s\n' "$out"
    R[startup_${n}_median]=$(sed -n 's/^RESULT .*median_ms=\([0-9.]*\).*/\1/p' <<<"$out")
    R[startup_${n}_min]=$(sed -n 's/^RESULT .*min_ms=\([0-9.]*\).*/\1/p' <<<"$out")
    R[startup_${n}_max]=$(sed -n 's/^RESULT .*max_ms=\([0-9.]*\).*/\1/p' <<<"$out")
  done
  R[startup_ran]=true
}

# ---------------------------------------------------------------------------
# controller: 1,000 MFAPolicies on a local control plane (hack/cluster.sh).

section_controller() {
  local kc=$work/cluster/kubeconfig kubectl=$KUBEBUILDER_ASSETS/kubectl probe
  log "controller: starting etcd and kube-apiserver (hack/cluster.sh)"
  cluster_started=true
  if ! DEMO_STATE=$work/cluster DEMO_APISERVER_PORT=$(free_port) DEMO_ETCD_PORT=$(free_port) DEMO_ETCD_PEER_PORT=$(free_port) \
    KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS "$root/hack/cluster.sh" up >"$work/logs/cluster.log" 2>&1; then
    tail -n 20 "$work/logs/cluster.log" >&2
    fail_section "controller: the local control plane did not start"
    return
  fi
  KUBECONFIG=$kc "$kubectl" apply --server-side -f config/crd/bases >/dev/null
  KUBECONFIG=$kc "$kubectl" wait --for=condition=Established --timeout=60s \
    crd/mfapolicies.mfa.operator.dev crd/mfaproviders.mfa.operator.dev >/dev/null
  KUBECONFIG=$kc "$kubectl" create namespace mfa-system >/dev/null
  probe=$(free_port)
  start_bg controller env KUBECONFIG="$kc" "$BIN" controller --namespace mfa-system \
    --trusted-proxies 127.0.0.1/32 --insecure-cookies --manage-deployment=false \
    --kubeconfig "$kc" --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe"
  local cpid=$STARTED_PID
  if ! wait_http "http://127.0.0.1:$probe/readyz" 200 90; then
    tail -n 20 "$work/logs/controller.log" >&2
    fail_section "controller: the operator did not become ready"
    return
  fi
  local out t0 t1
  t0=$(cpu_ticks "$cpid")
  log "controller: creating $POLICIES MFAPolicies"
  if ! out=$("$TOOLS/ctrlbench" -kubeconfig "$kc" -n "$POLICIES" -operator-namespace mfa-system -operator-pid "$cpid"); then
    tail -n 20 "$work/logs/controller.log" >&2
    fail_section "controller: $POLICIES policies did not all become Ready with a bundle"
    return
  fi
  t1=$(cpu_ticks "$cpid")
  printf '%s\n' "$out"
  local k
  for k in apply_s ready_s bundle_s total_s bundle_bytes; do
    R[ctrl_$k]=$(sed -n "s/^RESULT .*$k=\([0-9.]*\).*/\1/p" <<<"$out")
  done
  R[ctrl_cpu_s]=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  R[ctrl_rss_kb]=$(rss_kb "$cpid")
  stop_bg "$cpid"
  R[ctrl_ran]=true
}

# ---------------------------------------------------------------------------
# The summary table and docs/performance.md.

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

summary_rows() { # prints the HTTP summary rows, FORMAT: plain or markdown
  local s fmt=$1 name rps p50 p99 cpu rr rc bad valid
  for s in A H B C; do
    name=$(scenario_name $s)
    if [ -z "${R[http_${s}_rps]:-}" ]; then
      if [ "$fmt" = plain ]; then
        printf '%-28s %9s %9s %9s %12s %12s %10s %11s\n' "$name" n/a n/a n/a n/a n/a n/a "not measured"
      else
        printf '| %s | n/a | n/a | n/a | n/a | n/a | n/a | not measured |\n' "$name"
      fi
      continue
    fi
    rps=$(awk -v x="${R[http_${s}_rps]}" 'BEGIN { printf "%.0f", x }')
    p50=$(fmt_ms "${R[http_${s}_p50]}")
    p99=$(fmt_ms "${R[http_${s}_p99]}")
    cpu=$(awk -v x="${R[http_${s}_cpu]}" 'BEGIN { printf "%.1f", x }')
    rr=1.00 rc=1.00
    if [ "$s" != A ]; then
      rr=$(awk -v x="${R[http_${s}_rps_ratio]:-}" 'BEGIN { if (x == "") print "n/a"; else printf "%.2f", x }')
      rc=$(awk -v x="${R[http_${s}_cpu_ratio]:-}" 'BEGIN { if (x == "") print "n/a"; else printf "%.2f", x }')
    fi
    bad=${R[http_${s}_unexpected]}
    valid=$bad
    [ "$bad" = 0 ] || valid="$bad INVALID"
    if [ "$fmt" = plain ]; then
      printf '%-28s %9s %9s %9s %12s %12s %10s %11s\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$rr" "$rc" "$valid"
    else
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$rr" "$rc" "$valid"
    fi
  done
}

# dialect_lines: /auth, /ext-authz and gRPC Check for a remembered browser,
# each as a ratio to its empty handler in the same run (Go benchmarks): in
# process (the handler alone, against BenchmarkEmptyHandler) and over
# loopback (HTTP/1.1 against an empty net/http handler, gRPC against an
# empty Check).
dialect_lines() {
  [ -n "${R[go_empty]:-}" ] || return 0
  echo "front-door dialects, remembered browser, time per request as a ratio to the empty handler of the same run (Go benchmarks, medians of ${BENCH_DIALECT_RUNS:-5} runs):"
  echo "  in process:    /auth $(ratio "${R[go_auth]:-}" "${R[go_empty]}")  /ext-authz $(ratio "${R[go_extauthz]:-}" "${R[go_empty]}")  gRPC Check $(ratio "${R[go_check]:-}" "${R[go_empty]}")  (ns/op: empty ${R[go_empty]}, /auth ${R[go_auth]:-n/a}, /ext-authz ${R[go_extauthz]:-n/a}, Check ${R[go_check]:-n/a})"
  # In process, a Check also turns Envoy's header map into the request the
  # decision reads, and builds protobuf messages: work that, for /auth,
  # net/http does outside the handler (reading the request, writing the
  # answer), which the loopback figures count for both.
  if [ -n "${R[go_auth]:-}" ]; then
    echo "  in process, against /auth: /ext-authz $(ratio "${R[go_extauthz]:-}" "${R[go_auth]}")  gRPC Check $(ratio "${R[go_check]:-}" "${R[go_auth]}")"
  fi
  if [ -n "${R[go_http_empty]:-}" ] && [ -n "${R[go_grpc_empty]:-}" ]; then
    echo "  over loopback: /auth $(ratio "${R[go_http_auth]:-}" "${R[go_http_empty]}")  /ext-authz $(ratio "${R[go_http_extauthz]:-}" "${R[go_http_empty]}") (of an empty HTTP handler)  gRPC Check $(ratio "${R[go_grpc_check]:-}" "${R[go_grpc_empty]}") (of an empty gRPC Check)"
    awk -v a="${R[go_http_auth]:-0}" -v e="${R[go_http_extauthz]:-0}" -v he="${R[go_http_empty]}" -v c="${R[go_grpc_check]:-0}" -v ge="${R[go_grpc_empty]}" 'BEGIN {
      ra = a / he; re = e / he; rc = c / ge
      printf "/ext-authz and gRPC Check within 10%% of /auth over loopback (Go client in the same process; the instructions line below is the steadier figure): /ext-authz %s (%.2f against %.2f), Check %s (%.2f against %.2f)\n", (re <= ra * 1.1 ? "met" : "NOT met"), re, ra, (rc <= ra * 1.1 ? "met" : "NOT met"), rc, ra }'
  fi
}

goal_lines() {
  if [ -n "${R[http_B_rps_ratio]:-}" ]; then
    awk -v r="${R[http_B_rps_ratio]}" 'BEGIN {
      printf "goal /auth remembered within 15%% of the empty handler (req/s ratio >= 0.85): %s (%.3f)\n", (r >= 0.85 ? "met" : "NOT met"), r }'
  fi
  if [ -n "${R[http_B_cpu_ratio]:-}" ]; then
    awk -v r="${R[http_B_cpu_ratio]}" 'BEGIN {
      printf "goal /auth remembered CPU per request <= 1.2x the empty handler'"'"'s: %s (%.3fx)\n", (r <= 1.2 ? "met" : "NOT met"), r }'
  fi
  if [ -n "${R[http_BH_rps_ratio]:-}" ]; then
    awk -v r="${R[http_BH_rps_ratio]}" -v c="${R[http_BH_cpu_ratio]}" 'BEGIN {
      printf "the same two goals against the empty handler sending /auth'"'"'s three headers: req/s ratio %.3f (%s), CPU %.3fx (%s)\n", r, (r >= 0.85 ? "met" : "NOT met"), c, (c <= 1.2 ? "met" : "NOT met") }'
  fi
  if [ -n "${R[http_B_cpu]:-}" ] && [ -n "${R[http_C_cpu]:-}" ]; then
    awk -v b="${R[http_B_cpu]}" -v c="${R[http_C_cpu]}" 'BEGIN {
      printf "goal 401 path no more expensive than the 200 path (CPU per request): %s (%.1f against %.1f µs)\n", (c <= b ? "met" : "NOT met"), c, b }'
  fi
  dialect_lines
  instr_dialect_line
  if [ -n "${R[go_rules_1]:-}" ] && [ -n "${R[go_rules_100]:-}" ]; then
    awk -v one="${R[go_rules_1]}" -v hundred="${R[go_rules_100]}" 'BEGIN {
      printf "goal 100 rules cost less than 2x one rule when the first matches: %s (%.0f against %.0f ns/op)\n", (hundred < 2 * one ? "met" : "NOT met"), hundred, one }'
  fi
  if [ -n "${R[go_empty]:-}" ] && [ -n "${R[go_ff_hit]:-}" ]; then
    awk -v e="${R[go_empty]}" -v h="${R[go_rules_10]:-0}" -v hit="${R[go_ff_hit]}" -v miss="${R[go_ff_miss]:-0}" 'BEGIN {
      printf "/auth remembered, 10 rules, as ns/op ratios to the empty handler (%.0f ns/op): header identity %.2f, forwardAuth cache hit %.2f, forwardAuth cache miss (a local first factor over HTTP) %.2f\n", e, h / e, hit / e, miss / e }'
  fi
  if [ -n "${R[mem_after_kb]:-}" ]; then
    awk -v w="${R[mem_warm_kb]}" -v a="${R[mem_after_kb]}" 'BEGIN {
      d = (a - w) / 1024; printf "memory flat after the warm-up (within 5 MB): %s (%+.1f MB)\n", (d <= 5 ? "yes" : "NO"), d }'
    [ "${R[mem_unexpected]}" = 0 ] || echo "memory test INVALID: ${R[mem_unexpected]} responses were not 401"
  fi
  if [ -n "${R[startup_1_median]:-}" ]; then
    awk -v m="${R[startup_1_median]}" 'BEGIN { printf "goal startup <= 150 ms (median): %s (%.1f ms)\n", (m <= 150 ? "met" : "NOT met"), m }'
  fi
}

print_summary() {
  echo
  echo "=== summary ($(date -u +%FT%TZ), $(nproc) CPUs, load average before the run ${LOAD_START}) ==="
  if [ "${R[http_ran]:-}" = true ]; then
    echo
    printf '%-28s %9s %9s %9s %12s %12s %10s %11s\n' scenario "req/s" p50 p99 "cpu µs/req" "ratio req/s" "ratio cpu" unexpected
    summary_rows plain
    echo "(median of ${R[http_A_runs]:-0} alternating runs of $DURATION each; wrk -t$THREADS -c$CONNS; GOMAXPROCS ${GOMAXPROCS:-$(nproc)})"
    echo "(ratios: median of each round's ratio to the empty handler's run of the same round; req/s/cpu per round: B ${R[http_B_ratios]:-n/a}; 401 ${R[http_C_ratios]:-n/a})"
    if [ -n "${R[http_BH_rps_ratio]:-}" ]; then
      awk -v r="${R[http_BH_rps_ratio]}" -v c="${R[http_BH_cpu_ratio]}" -v h="${R[http_H_cpu_ratio]:-0}" 'BEGIN {
        printf "(the answer'"'"'s three headers alone cost %.2fx the empty handler'"'"'s CPU; /auth remembered against the empty handler with the same headers: req/s ratio %.2f, CPU %.2fx)\n", h, r, c }'
    fi
    other_cpu_line
  fi
  if [ "${R[instr_ran]:-}" = true ]; then
    echo
    printf '%-28s %14s %10s\n' "scenario (valgrind)" "instr/request" "ratio"
    instr_rows plain
    echo "(user-space instructions per request, GOMAXPROCS=1, requests one after the other: hack/bench/instr.sh; the gRPC Check's ratio is to the empty gRPC Check, the others' to the empty handler)"
  fi
  if [ "${R[mem_ran]:-}" = true ]; then
    echo
    printf 'memory RSS: idle %s MB, after warm-up %s MB, after %s 401 requests %s MB (%s unexpected); %s policies loaded %s MB\n' \
      "$(mb "${R[mem_idle_kb]}")" "$(mb "${R[mem_warm_kb]}")" "${R[mem_requests]}" "$(mb "${R[mem_after_kb]}")" \
      "${R[mem_unexpected]}" "$POLICIES" "$(mb "${R[mem_many_kb]:-0}")"
  fi
  if [ "${R[startup_ran]:-}" = true ]; then
    printf 'startup (exec to /readyz 200, median of %s): 1 policy %s ms, %s policies %s ms\n' \
      "$STARTUP_RUNS" "${R[startup_1_median]:-n/a}" "$POLICIES" "${R[startup_${POLICIES}_median]:-n/a}"
  fi
  if [ "${R[ctrl_ran]:-}" = true ]; then
    printf 'controller: %s MFAPolicies created in %ss, all Ready after %ss, bundle with all of them after %ss; bundle %s bytes; operator CPU %ss, RSS %s MB\n' \
      "$POLICIES" "${R[ctrl_apply_s]}" "${R[ctrl_ready_s]}" "${R[ctrl_bundle_s]}" "${R[ctrl_bundle_bytes]}" "${R[ctrl_cpu_s]}" "$(mb "${R[ctrl_rss_kb]}")"
  fi
  echo
  goal_lines
  if [ ${#SCALE_FIGURES[@]} -gt 0 ]; then
    echo "scale:"
    printf '  %s\n' "${SCALE_FIGURES[@]}"
  fi
  if [ ${#failures[@]} -gt 0 ]; then
    echo
    echo "failures:"
    printf '  - %s\n' "${failures[@]}"
  fi
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# other_cpu_line says how much else ran during the HTTP runs.
other_cpu_line() {
  awk -v a="${R[http_A_other]:-0}" -v b="${R[http_B_other]:-0}" -v c="${R[http_C_other]:-0}" 'BEGIN {
    m = a; if (b > m) m = b; if (c > m) m = c
    printf "(other processes used at most %.1f%% of the CPUs during a run%s)\n", m,
      (m > 10 ? ": the machine was busy, the figures are noisy" : "") }'
}

write_doc() {
  [ -n "$DOC" ] || return 0
  local cpu_model go_version commit
  cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  go_version=$(go env GOVERSION)
  commit=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
  if [ -z "${BENCH_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=normal -- '*.go' 2>/dev/null)" ]; then
    commit="$commit with uncommitted Go changes"
  fi
  mkdir -p "$(dirname "$DOC")"
  {
    cat <<EOF
# Performance

Every protected request waits for \`/auth\`, so its cost is the product's
cost. These figures come from \`make bench\` (\`hack/bench.sh\`), all taken in
one run on one machine. They are regenerated by each run; the figures below
are from the last one.

Reproduce: \`make bench\` (or \`hack/bench.sh\`; \`BENCH_SECTIONS=http hack/bench.sh\`
for one section, settings at the top of the script).

## Machine

| | |
|---|---|
| date | $(date -u +%FT%TZ) |
| commit | $commit |
| CPUs (nproc) | $(nproc) |
| CPU model | ${cpu_model:-unknown} |
| Go | $go_version |
| kernel | $(uname -r) |
| load average before the run (1, 5, 15 min) | ${LOAD_START} |

EOF
    # What else ran is measured during the HTTP runs; the load average at
    # the start also counts what finished just before (a build, a test).
    if [ "${R[http_ran]:-}" = true ]; then
      other_cpu_line | sed 's/^(//; s/)$/./; s/^./\U&/'
      echo
    elif awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l >= 1.0) }'; then
      cat <<EOF
The machine was busy when this run started (1-minute load average
${LOAD_START%% *} on $(nproc) CPUs, which includes work that had just
finished), so the figures may be noisy; compare the ratios rather than the
absolute values.

EOF
    fi
    if [ "${R[http_ran]:-}" = true ]; then
      cat <<EOF
## /auth over loopback, against an empty Go handler

The challenge server (\`mfa-operator webhook\`, standalone mode, one policy of
three rules whose last asks for a TOTP second factor) against a server whose
\`net/http\` handler does nothing (\`hack/bench/emptyserver\`, same
\`http.Server\` settings), both built with \`go build\`, same GOMAXPROCS
(${GOMAXPROCS:-$(nproc)}). The client is wrk (\`-t$THREADS -c$CONNS\`, keep-alive)
with the same request headers for both (identity header, \`X-Original-URL\`,
\`X-Forwarded-For\`, the cookie); runs of $DURATION alternate empty handler,
empty handler with /auth's headers, /auth 200, /auth 401, ${ROUNDS} rounds, each
round starting one scenario later than the one before (so that none always
runs first or right after another); the table shows the median run, and
each ratio is the median of the rounds' ratios (a run against the empty
handler's run of the same round). The remembered-browser cookie is a real one: the user enrolled through the
challenge pages with a code from oathtool. Server CPU is the server
process's own user+system time (/proc/PID/stat) over the run, divided by the
requests. A response with another status than the expected one is counted
as unexpected, and a run with any is invalid.

| scenario | req/s | p50 | p99 | server CPU µs/req | ratio req/s | ratio CPU | unexpected |
|---|---:|---:|---:|---:|---:|---:|---:|
EOF
      summary_rows markdown
      echo
      if [ -n "${R[http_BH_rps_ratio]:-}" ]; then
        awk -v r="${R[http_BH_rps_ratio]}" -v c="${R[http_BH_cpu_ratio]}" -v h="${R[http_H_cpu_ratio]:-0}" -v hr="${R[http_H_rps_ratio]:-0}" 'BEGIN {
          printf "The row \"empty + /auth'"'"'s headers\" is the empty handler answering the three\n"
          printf "response headers of a real /auth 200 (X-MFA-User, X-MFA-Multifactor and the\n"
          printf "signed X-MFA-Assertion), fixed, with no decision: net/http copies a handler'"'"'s\n"
          printf "header map when the response is written, sorts it and writes each value,\n"
          printf "and the client parses more. Those headers alone take %.2fx the empty\n", h
          printf "handler'"'"'s CPU per request (req/s ratio %.2f). Against that handler,\n", hr
          printf "/auth for a remembered user runs at a req/s ratio of %.2f and %.2fx its CPU:\n", r, c
          printf "that is the cost of the decision itself.\n\n" }'
      fi
      cat <<'TXT'
On a shared 2-CPU machine the medians themselves move by several percent
from one run to the next (single rounds by much more), so a ratio close to
a goal can fall on either side of it; compare a few runs before concluding.

TXT
      cat <<'TXT'
What a remembered user's /auth does: the auth paths are routed without the
ServeMux's pattern matching; the peer address and the client address are
parsed once, and the client address keeps the header's own text; a plain
X-Original-URL is read without url.Parse (anything else still goes through
it); the per-request state comes from a pool; rules are compiled once. The
forms most rules are written in (a path prefix, equality with a literal,
membership of a method or a group, `cidr("…").containsIP(ip(request.ip))`,
joined by `!`, `&&` and `||`) are evaluated by Go closures built from the
checked expression, a few nanoseconds each instead of 60-250 ns in CEL's
interpreter; a differential test and a fuzz target hold them to CEL's
answers and errors. Other rules run in CEL, reading `user` and `request`
fields directly, without reflection, with constant `cidr()`/`ip()`
arguments parsed at compile time. The remembered cookie is opened once and
cached; the signed assertion is cached per user, host and factors; nothing
is logged below warn level; no store lookup, no disk or network I/O. One
allocation of 16 bytes remains in the decision with a header identity,
none with a JWT identity (Go benchmarks below). The garbage
collector lets the heap grow by `--gc-headroom` (32 MiB) between
collections while the live heap is small: with Go's default a collection
ran every 35 ms under load, about 3 µs of CPU per request.

Each of these replaces standard library code, and stays only because it
pays more than 5% of /auth's work per request. Measured with the
instruction count of the instr section (two runs of each build, 4,000
remembered /auth requests each, against about 82,000 instructions per
request for the build with all of them): the ServeMux taken for the auth
paths +7,600 instructions per request (+9%); net/http's cookie parser
(`Request.CookiesNamed`) instead of the one that reads only ours +5,400
(+7%); `url.Parse` for every X-Original-URL +6,700 (+8%); Go's default
garbage collector settings instead of `--gc-headroom` +20,700 (+25%). A
pool of the per-request state saves nothing measurable here, where
`--gc-headroom` makes collections rare, but it stays: allocated per
request, its 456 bytes were 97% of what the decision allocates, and where
collections are frequent (Go's default, which `--gc-headroom` keeps for a
large configuration's heap; the Go benchmarks) they cost about a quarter
of the decision's instructions (BenchmarkAuthRemembered, header/rules=10:
13,300 instructions per request allocated, 10,300 pooled).
The kernel's share of a request (socket calls) is not in these counts, so
each gain is somewhat smaller in CPU time. Two runs of one build have
differed by up to 10% (80,770 and 89,281 instructions), so only the garbage
collector setting is clearly above that spread; the three others are
measured gains of the size of the spread.

The empty handler runs with Go's default garbage collector settings, as an
untuned Go server does. Given the challenge server's 32 MiB of headroom
(GOGC=800 for its small heap) it used about 5% less CPU per request in a
10-round comparison, so against such a tuned baseline every ratio above
would be about 5% higher.

The req/s ratio also carries the client's cost: wrk shares the two CPUs
with the server, and parsing /auth's larger answer (about 560 bytes of
headers against 100) costs it 2-3 µs more per response ("wrk CPU µs/req"
below), which the server's own CPU per request does not include.

TXT
      echo "Per run:"
      echo
      echo "| scenario | round | req/s | p50 | p99 | server CPU µs/req | wrk CPU µs/req | other processes' CPU | unexpected |"
      echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
      local s r n rps p50 p99 cpu bad sock wrkcpu other
      for s in A H B C; do
        [ -s "$work/http-$s" ] || continue
        r=0
        while read -r n rps p50 p99 cpu bad sock wrkcpu other; do
          r=$((r + 1))
          printf '| %s | %d | %s | %s | %s | %s | %s | %s%% | %s |\n' "$(scenario_name $s)" "$r" "$rps" "$(fmt_ms "$p50")" "$(fmt_ms "$p99")" "$cpu" "$wrkcpu" "$other" "$((bad + sock))"
        done <"$work/http-$s"
      done
      echo
      echo "\"Other processes' CPU\" is the machine's busy time during the run minus"
      echo "the server's and wrk's, in % of all CPUs: what else ran at the same time."
      echo
    fi
    if [ "${R[instr_ran]:-}" = true ]; then
      cat <<EOF
## Instructions per request (valgrind)

The same four scenarios and the Envoy dialects, each server run under \`valgrind --tool=cachegrind\`
with GOMAXPROCS=1, answering $INSTR_N1 and then (a second run) $INSTR_N2 identical
requests sent one after the other over one keep-alive connection; the
difference divided by $((INSTR_N2 - INSTR_N1)) is the server's user-space work per
request, garbage collection included. Unlike CPU time, this figure does not
move with what else runs on the machine, so it is the one to compare
between commits; the kernel's socket work is not in it, which makes the
ratios larger than the CPU-time ratios above. The gRPC Check is compared
with an empty Check served by a grpc.Server configured like the challenge
server's (\`hack/bench/emptyserver -grpc-addr\`), over one HTTP/2 connection.

| scenario | instructions per request | ratio to its empty handler |
|---|---:|---:|
EOF
      instr_rows markdown
      echo
    fi
    if [ "${R[mem_ran]:-}" = true ]; then
      cat <<EOF
## Memory (VmRSS of the challenge server)

| state | RSS |
|---|---:|
| idle, after start-up (1 policy) | $(mb "${R[mem_idle_kb]}") MB |
| after a warm-up of ${R[mem_warm_requests]} requests | $(mb "${R[mem_warm_kb]}") MB |
| after ${R[mem_requests]} more 401 requests (${R[mem_unexpected]} unexpected$([ "${R[mem_unexpected]}" = 0 ] || echo ': INVALID')) | $(mb "${R[mem_after_kb]}") MB |
| idle, $POLICIES policies loaded | $(mb "${R[mem_many_kb]:-0}") MB |

The step from idle to warmed up is the garbage collector's headroom
(\`--gc-headroom\`, 32 MiB by default; \`--gc-headroom=0\` or \`GOGC\` restores Go's
default): the heap may grow by that much between collections while the
live heap is small. After it, RSS stays flat: an unauthenticated request
leaves nothing behind.

EOF
    fi
    if [ "${R[startup_ran]:-}" = true ]; then
      cat <<EOF
## Startup

From exec of \`mfa-operator webhook --config-dir ...\` (standalone) to its
\`/readyz\` answering 200, polled every millisecond (\`hack/bench/startup\`),
$STARTUP_RUNS runs after one unmeasured run. Goal: 150 ms.

| policies | median | min | max |
|---:|---:|---:|---:|
| 1 | ${R[startup_1_median]:-n/a} ms | ${R[startup_1_min]:-n/a} ms | ${R[startup_1_max]:-n/a} ms |
| $POLICIES | ${R[startup_${POLICIES}_median]:-n/a} ms | ${R[startup_${POLICIES}_min]:-n/a} ms | ${R[startup_${POLICIES}_max]:-n/a} ms |

EOF
    fi
    if [ "${R[ctrl_ran]:-}" = true ]; then
      cat <<EOF
## Controller

$POLICIES MFAPolicies created (8 concurrent clients, \`hack/bench/ctrlbench\`)
against a local etcd and kube-apiserver (\`hack/cluster.sh\`) with
\`mfa-operator controller\` running; the clock starts at the first create
and stops when every policy has Ready=True at its generation and the
\`mfa-bundle\` Secret holds all of them.

| | |
|---|---:|
| creating the $POLICIES objects | ${R[ctrl_apply_s]} s |
| all Ready | ${R[ctrl_ready_s]} s |
| bundle holding all of them | ${R[ctrl_bundle_s]} s |
| bundle size (manifest and shards) | ${R[ctrl_bundle_bytes]} bytes |
| operator CPU time during the test | ${R[ctrl_cpu_s]} s |
| operator RSS afterwards | $(mb "${R[ctrl_rss_kb]}") MB |

EOF
    fi
    if [ -n "${SECTION_OUT[go]:-}" ]; then
      cat <<EOF
## Go benchmarks of the decision path

\`go test -run '^\$' -bench . -benchmem ./webhook/ ./internal/policy/ ./internal/session/\`

\`\`\`
${SECTION_OUT[go]}
\`\`\`

EOF
    fi
    if [ ${#SCALE_FIGURES[@]} -gt 0 ]; then
      echo "## Scale (SCALE=1 make bench)"
      echo
      echo '```'
      printf '%s\n' "${SCALE_FIGURES[@]}"
      echo '```'
      echo
    fi
    echo "## Summary as printed"
    echo
    echo '```'
    print_summary | sed '1d'
    echo '```'
  } >"$DOC.tmp"
  mv "$DOC.tmp" "$DOC"
  log "wrote $DOC"
}

# scale: each hack/bench/scale/*.sh runs on its own with BIN, TOOLS,
# KUBEBUILDER_ASSETS and a scratch directory SCALE_WORK; its lines that
# begin with "FIGURE " are the figures of the summary and the report (the
# rest is its log).
SCALE_FIGURES=()
section_scale() {
  local script name out
  for script in "$root"/hack/bench/scale/*.sh; do
    [ -e "$script" ] || continue
    name=$(basename "$script" .sh)
    log "scale: $name"
    mkdir -p "$work/scale-$name"
    if ! out=$(BIN=$BIN TOOLS=$TOOLS KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS SCALE_WORK=$work/scale-$name \
      "$script" 2>"$work/logs/scale-$name.log"); then
      tail -n 20 "$work/logs/scale-$name.log" >&2
      fail_section "scale: $name"
    fi
    printf '%s\n' "$out"
    while IFS= read -r line; do
      SCALE_FIGURES+=("$name: ${line#FIGURE }")
    done < <(grep '^FIGURE ' <<<"$out" || true)
  done
}

# ---------------------------------------------------------------------------

LOAD_START=$(load_avg)
log "load average: $LOAD_START on $(nproc) CPUs$(awk -v l="${LOAD_START%% *}" 'BEGIN { if (l >= 1.0) printf " (busy machine: figures will be noisy)" }')"
check_tools
build
for s in go http instr memory startup controller scale; do
  if wants "$s"; then
    echo
    echo "=== $s ==="
    "section_$s"
  fi
done
print_summary
write_doc
[ ${#failures[@]} -eq 0 ]
