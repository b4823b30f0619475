#!/usr/bin/env bash
# 100,000 enrolled users against a local API server (hack/cluster.sh):
# enrolment Secrets written through internal/store by hack/bench/users, then
# the controller, the challenge server, the challenge pages, lockout writes,
# the API server and `mfa-operator users` measured with them in place.
#
#   hack/bench/scale/users.sh             (from the repository root, after make build)
#
# Settings (environment; defaults in brackets):
#   BIN [bin/mfa-operator]                     the operator binary
#   KUBEBUILDER_ASSETS [bin/k8s/v1.37.2]       etcd, kube-apiserver, kubectl
#   SCALE_WORK [a new directory under /tmp]    scratch: cluster state, logs, tools
#   SCALE_USERS [100000]                       enrolled users (every 10th a WebAuthn key)
#   SCALE_USERS_IDLE [60]                      seconds of each idle measurement
#   SCALE_USERS_VERIFY [2000]                  users answering a valid code
#   SCALE_USERS_ENROL [300]                    new users enrolling
#   SCALE_USERS_LOCKOUT [1000]                 users sending 5 wrong codes each
#   SCALE_USERS_SMALL [2000]                   users in place for the pages' reference run
#   SCALE_USERS_WRITERS [48]                   concurrent writers of populate
#   SCALE_USERS_KEEP [0]                       1: leave the control plane running at the end
#                                              (DEMO_STATE=SCALE_WORK/cluster hack/cluster.sh down)
#
# Prints "FIGURE <what>: <value> (goal <goal>: met|NOT met)" lines on
# stdout, its log on stderr; exits non-zero only when the run itself fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
BIN=${BIN:-$root/bin/mfa-operator}
KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$root/bin/k8s/v1.37.2}
SCALE_WORK=${SCALE_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/scale-users.XXXXXX")}
USERS=${SCALE_USERS:-100000}
IDLE=${SCALE_USERS_IDLE:-60}
VERIFY_USERS=${SCALE_USERS_VERIFY:-2000}
ENROL_USERS=${SCALE_USERS_ENROL:-300}
LOCKOUT_USERS=${SCALE_USERS_LOCKOUT:-1000}
NS=mfa-system
HZ=$(getconf CLK_TCK)

mkdir -p "$SCALE_WORK/logs"
SCALE_WORK=$(cd "$SCALE_WORK" && pwd)
STATE=$SCALE_WORK/cluster
KC=$STATE/kubeconfig
KUBECTL=$KUBEBUILDER_ASSETS/kubectl

# shellcheck source=hack/lib/proc.sh
. "$root/hack/lib/proc.sh"
# shellcheck source=hack/lib/measure.sh
. "$root/hack/lib/measure.sh"
BG_LOGS=$SCALE_WORK/logs
[ -x "$BIN" ] || die "$BIN is missing; run: make build"
command -v curl >/dev/null || die "curl is missing"

# figure WHAT VALUE GOAL MET: one line of the contract.
figure() { printf 'FIGURE %s: %s (goal %s: %s)\n' "$1" "$2" "$3" "$([ "$4" = 1 ] && echo met || echo "NOT met")"; }
# cmp_le A B: 1 when A <= B.
cmp_le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? 1 : 0 }'; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
kubectl() { KUBECONFIG=$KC "$KUBECTL" "$@"; }

wait_http() { # URL TIMEOUT_S: until it answers 200
  local deadline=$((SECONDS + $2))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)" = 200 ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.02
  done
}

cleanup() {
  local p
  for p in "${pids[@]}"; do stop_bg "$p"; done
  if [ "${SCALE_USERS_KEEP:-0}" = 1 ]; then
    log "the control plane keeps running: KUBECONFIG=$KC; stop it with DEMO_STATE=$STATE hack/cluster.sh down"
    return
  fi
  DEMO_STATE=$STATE "$root/hack/cluster.sh" down >>"$SCALE_WORK/logs/cluster.log" 2>&1 || true
}
trap cleanup EXIT

# apiserver_metrics FILE: the API server's /metrics.
apiserver_metrics() {
  curl -fsS --max-time 20 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" \
    "$APISERVER_URL/metrics" >"$1"
}
# metric FILE NAME FILTER...: the sum of NAME's series whose labels hold
# every FILTER (e.g. 'resource="secrets"').
metric() {
  local f=$1 name=$2
  shift 2
  awk -v name="$name" -v filters="$*" '
    BEGIN { n = split(filters, want, " ") }
    index($0, name "{") == 1 || $1 == name {
      for (i = 1; i <= n; i++) if (index($0, want[i]) == 0) next
      s += $NF
    }
    END { printf "%.0f\n", s }' "$f"
}

proc_pid() { cat "$STATE/pids/$1.pid"; }

# --- the control plane, the CRDs, one TOTP provider and one policy --------

log "starting etcd and kube-apiserver (hack/cluster.sh) in $STATE"
DEMO_APISERVER_PORT=$(free_port) DEMO_ETCD_PORT=$(free_port) DEMO_ETCD_PEER_PORT=$(free_port)
export DEMO_STATE=$STATE KUBEBUILDER_ASSETS DEMO_APISERVER_PORT DEMO_ETCD_PORT DEMO_ETCD_PEER_PORT
"$root/hack/cluster.sh" up >>"$SCALE_WORK/logs/cluster.log" 2>&1 || {
  tail -n 20 "$SCALE_WORK/logs/cluster.log" >&2
  die "the local control plane did not start"
}
eval "$("$root/hack/cluster.sh" env)"
kubectl apply --server-side -f config/crd/bases >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/mfapolicies.mfa.operator.dev crd/mfaproviders.mfa.operator.dev >/dev/null
kubectl create namespace "$NS" >/dev/null
kubectl create namespace apps >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec:
  type: totp
  totp: { issuer: Bench Corp }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: bench, namespace: apps }
spec:
  hosts: [app.example.com]
  identity:
    header: { user: X-Auth-Request-Email }
  rules:
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
  default: Allow
YAML

log "building hack/bench/users"
go build -o "$SCALE_WORK/users" ./hack/bench/users

# start_controller: the operator as hack/bench.sh's controller section runs
# it; sets CTRL_PID and CTRL_READY_MS (exec to /readyz).
start_controller() {
  local probe t0
  probe=$(free_port)
  t0=$(now_ms)
  start_bg controller env KUBECONFIG="$KC" "$BIN" controller --namespace "$NS" \
    --trusted-proxies 127.0.0.1/32 --insecure-cookies --manage-deployment=false \
    --kubeconfig "$KC" --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe"
  CTRL_PID=$STARTED_PID
  wait_http "http://127.0.0.1:$probe/readyz" 120 || die "the controller did not become ready (see $SCALE_WORK/logs/controller.log)"
  CTRL_READY_MS=$(($(now_ms) - t0))
}

# measure_controller LABEL: starts the controller, waits IDLE seconds; sets
# CTRL_<LABEL>_{READY_MS,RSS0,RSS,CPU} (RSS in kB after ready and after the
# idle minute, CPU seconds over it) and leaves it running.
measure_controller() {
  local t0
  start_controller
  sleep 2
  printf -v "CTRL_$1_READY_MS" %s "$CTRL_READY_MS"
  printf -v "CTRL_$1_RSS0" %s "$(rss_kb "$CTRL_PID")"
  t0=$(cpu_ticks "$CTRL_PID")
  sleep "$IDLE"
  printf -v "CTRL_$1_RSS" %s "$(rss_kb "$CTRL_PID")"
  printf -v "CTRL_$1_CPU" %s "$(awk -v a="$t0" -v b="$(cpu_ticks "$CTRL_PID")" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
  log "controller ($1 users): ready in ${CTRL_READY_MS} ms, RSS $(mb "$(eval echo "\$CTRL_$1_RSS0")") MB, after ${IDLE}s idle $(mb "$(eval echo "\$CTRL_$1_RSS")") MB, CPU $(eval echo "\$CTRL_$1_CPU") s"
}

# start_webhook: the challenge server in cluster mode, as hack/demo.sh runs
# it; sets WH_PID, WH_URL, WH_READY_MS (exec to /readyz).
start_webhook() {
  local port mport gport t0
  port=$(free_port) mport=$(free_port) gport=$(free_port)
  t0=$(now_ms)
  start_bg webhook env KUBECONFIG="$KC" "$BIN" webhook --namespace "$NS" \
    --listen "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" --grpc-addr "127.0.0.1:$gport" \
    --trusted-proxies 127.0.0.1/32 --insecure-cookies --public-url "http://127.0.0.1:$port"
  WH_PID=$STARTED_PID
  WH_URL=http://127.0.0.1:$port
  wait_http "$WH_URL/readyz" 120 || die "the challenge server did not become ready (see $SCALE_WORK/logs/webhook.log)"
  WH_READY_MS=$(($(now_ms) - t0))
}

# measure_webhook LABEL: with the controller stopped (so the challenge
# server is the API server's only client), starts the challenge server and
# counts what it lists at start and reads over IDLE seconds; sets
# WH_<LABEL>_{READY_MS,RSS,LISTS,LIST_BYTES,IDLE_BYTES,WATCH_EVENTS} and
# leaves it running.
measure_webhook() {
  local m0=$SCALE_WORK/metrics-$1-0 m1=$SCALE_WORK/metrics-$1-1 m2=$SCALE_WORK/metrics-$1-2 r0
  apiserver_metrics "$m0"
  start_webhook
  sleep 2
  apiserver_metrics "$m1"
  printf -v "WH_$1_READY_MS" %s "$WH_READY_MS"
  printf -v "WH_$1_LISTS" %s $(($(metric "$m1" apiserver_request_total 'verb="LIST"' 'resource="secrets"') - $(metric "$m0" apiserver_request_total 'verb="LIST"' 'resource="secrets"')))
  printf -v "WH_$1_LIST_BYTES" %s $(($(metric "$m1" apiserver_response_sizes_sum 'verb="LIST"') - $(metric "$m0" apiserver_response_sizes_sum 'verb="LIST"')))
  r0=$(read_bytes "$WH_PID")
  sleep "$IDLE"
  apiserver_metrics "$m2"
  printf -v "WH_$1_IDLE_BYTES" %s $(($(read_bytes "$WH_PID") - r0))
  printf -v "WH_$1_WATCH_EVENTS" %s $(($(metric "$m2" apiserver_watch_events_total) - $(metric "$m1" apiserver_watch_events_total)))
  printf -v "WH_$1_RSS" %s "$(rss_kb "$WH_PID")"
  log "challenge server ($1 users): ready in ${WH_READY_MS} ms, Secret LISTs at start $(eval echo "\$WH_$1_LISTS") ($(eval echo "\$WH_$1_LIST_BYTES") bytes of LIST answers), read $(eval echo "\$WH_$1_IDLE_BYTES") bytes over ${IDLE}s idle, RSS $(mb "$(eval echo "\$WH_$1_RSS")") MB"
}

pages() { # MODE FLAGS...: runs the pages driver against WH_URL, prints its RESULT lines
  local mode=$1
  shift
  "$SCALE_WORK/users" pages -server "$WH_URL" -policy apps/bench -mode "$mode" "$@" 2>>"$SCALE_WORK/logs/pages.log" ||
    die "pages -mode $mode failed (see $SCALE_WORK/logs/pages.log)"
}
res() { sed -n "s/^RESULT kind=$1 \(.* \)\{0,1\}$2=\([^ ]*\).*/\2/p" <<<"$3"; }
populate() { # N: users 0..N-1 enrolled (those already there are kept); sets POP_OUT
  POP_OUT=$("$SCALE_WORK/users" populate -kubeconfig "$KC" -namespace "$NS" -n "$1" -workers "${SCALE_USERS_WRITERS:-48}" 2>>"$SCALE_WORK/logs/populate.log") ||
    die "populate failed (see $SCALE_WORK/logs/populate.log)"
  printf '%s\n' "$POP_OUT" >&2
}

# run_pages LABEL VERIFY_FROM LOCKOUT_FROM VERIFY ENROL LOCKOUT: the three
# drivers; sets P_<LABEL>_<kind>_<key> for what the figures need, and the
# lockout burst's Secret updates, conflicts and seconds.
run_pages() {
  local l=$1 out m0=$SCALE_WORK/metrics-lockout-$1-0 m1=$SCALE_WORK/metrics-lockout-$1-1 k
  log "pages ($l): $4 enrolled users answer a valid code, $5 new users enrol, $6 users send 5 wrong codes each"
  out=$(pages verify -from "$2" -count "$4" -workers 8)
  printf '%s\n' "$out" >&2
  for k in p50_ms p99_ms; do
    printf -v "P_${l}_verify_code_$k" %s "$(res verify-code "$k" "$out")"
    printf -v "P_${l}_verify_page_$k" %s "$(res verify-page "$k" "$out")"
  done
  out=$(pages enrol -prefix "new-$l-$(date +%s)-" -count "$5" -workers 8)
  printf '%s\n' "$out" >&2
  for k in p50_ms p99_ms; do
    printf -v "P_${l}_enrol_page_$k" %s "$(res enrol-page "$k" "$out")"
    printf -v "P_${l}_enrol_confirm_$k" %s "$(res enrol-confirm "$k" "$out")"
  done
  apiserver_metrics "$m0"
  lock_r0=$(read_bytes "${IDLE_REPLICA_PID:-$$}") lock_c0=$(read_bytes "${CTRL_PID_RUNNING:-$$}")
  out=$(pages lockout -from "$3" -count "$6" -attempts 5 -workers 16)
  lock_r1=$(read_bytes "${IDLE_REPLICA_PID:-$$}") lock_c1=$(read_bytes "${CTRL_PID_RUNNING:-$$}")
  apiserver_metrics "$m1"
  printf '%s\n' "$out" >&2
  for k in p50_ms p99_ms n status; do
    printf -v "P_${l}_lockout_$k" %s "$(res lockout-wrong-code "$k" "$out")"
  done
  printf -v "P_${l}_lockout_seconds" %s "$(res lockout seconds "$out")"
  printf -v "P_${l}_lockout_errors" %s "$(res lockout errors "$out")"
  printf -v "P_${l}_lockout_puts" %s $(($(metric "$m1" apiserver_request_total 'verb="PUT"' 'resource="secrets"') - $(metric "$m0" apiserver_request_total 'verb="PUT"' 'resource="secrets"')))
  printf -v "P_${l}_lockout_conflicts" %s $(($(metric "$m1" apiserver_request_total 'verb="PUT"' 'resource="secrets"' 'code="409"') - $(metric "$m0" apiserver_request_total 'verb="PUT"' 'resource="secrets"' 'code="409"')))
}
pv() { eval echo "\${P_$1:-n/a}"; }
# within RATIO A B: 1 when A <= RATIO * B (a figure at 100k users against
# the same figure at the small set, same run).
within() { awk -v r="$1" -v a="$2" -v b="$3" 'BEGIN { print (a != "" && b != "" && a <= r * b) ? 1 : 0 }'; }

# --- 0 users: the baseline -------------------------------------------------

log "baseline: controller and challenge server with 0 enrolled users"
measure_controller 0
kubectl wait --for=condition=Ready --timeout=120s -n apps mfapolicy/bench >/dev/null
stop_bg "$CTRL_PID"
measure_webhook 0
stop_bg "$WH_PID"
API_RSS_0=$(rss_kb "$(proc_pid kube-apiserver)") ETCD_RSS_0=$(rss_kb "$(proc_pid etcd)")

# --- a small set of users: the pages' reference ------------------------------

SMALL=${SCALE_USERS_SMALL:-2000}
start_controller
log "populating the first $SMALL enrolments through internal/store"
populate "$SMALL"
start_webhook
IDLE_REPLICA_PID=$WH_PID
start_webhook
run_pages small 0 "$((SMALL / 2))" "$((SMALL / 4))" "$((ENROL_USERS / 3))" "$((SMALL / 4))"
stop_bg "$WH_PID"
stop_bg "$IDLE_REPLICA_PID"
unset IDLE_REPLICA_PID

# --- 100,000 users, written through the store --------------------------------

log "populating up to $USERS enrolments through internal/store (the controller runs meanwhile)"
CTRL_BEFORE_POP=$(rss_kb "$CTRL_PID")
populate "$USERS"
CTRL_AFTER_POP=$(rss_kb "$CTRL_PID")
stop_bg "$CTRL_PID"
figure "time to write enrolment Secrets $SMALL to $USERS through internal/store (${SCALE_USERS_WRITERS:-48} writers, Update: 2 GETs and a create each)" \
  "$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$POP_OUT") s, $(sed -n 's/.* per_s=\([0-9.]*\).*/\1/p' <<<"$POP_OUT")/s" "none, reported" 1

measure_controller 100k
stop_bg "$CTRL_PID"
d=$(awk -v a="$CTRL_0_RSS" -v b="$CTRL_100k_RSS" 'BEGIN { printf "%.1f", (b - a) / 1024 }')
figure "controller RSS ${IDLE}s after start, 0 -> $USERS users" "$(mb "$CTRL_0_RSS") -> $(mb "$CTRL_100k_RSS") MB ($d MB)" "growth <= 10 MB: enrolments stay out of its cache" "$(cmp_le "$d" 10)"
d=$(awk -v a="$CTRL_BEFORE_POP" -v b="$CTRL_AFTER_POP" 'BEGIN { printf "%.1f", (b - a) / 1024 }')
figure "controller RSS while enrolments $SMALL to $USERS were written" "$(mb "$CTRL_BEFORE_POP") -> $(mb "$CTRL_AFTER_POP") MB ($d MB)" "growth <= 10 MB" "$(cmp_le "$d" 10)"
figure "controller exec to /readyz, 0 / $USERS users" "$CTRL_0_READY_MS / $CTRL_100k_READY_MS ms" "none, reported" 1
figure "controller CPU over ${IDLE}s idle after start, 0 / $USERS users" "$CTRL_0_CPU / $CTRL_100k_CPU s" "<= 1 s with $USERS users" "$(cmp_le "$CTRL_100k_CPU" 1)"

measure_webhook 100k
d=$(awk -v a="$WH_0_RSS" -v b="$WH_100k_RSS" 'BEGIN { printf "%.1f", (b - a) / 1024 }')
figure "challenge server RSS per replica ${IDLE}s after start, 0 -> $USERS users" "$(mb "$WH_0_RSS") -> $(mb "$WH_100k_RSS") MB ($d MB)" "growth <= 10 MB" "$(cmp_le "$d" 10)"
figure "challenge server exec to /readyz, 0 / $USERS users" "$WH_0_READY_MS / $WH_100k_READY_MS ms" "<= 2000 ms with $USERS users" "$(cmp_le "$WH_100k_READY_MS" 2000)"
figure "challenge server Secret LISTs at start with $USERS users (bytes of all LIST answers)" "$WH_100k_LISTS ($WH_100k_LIST_BYTES bytes; 0 users: $WH_0_LISTS, $WH_0_LIST_BYTES bytes)" "no enrolment listed: LIST bytes within 64 KiB of 0 users'" "$(cmp_le "$((WH_100k_LIST_BYTES - WH_0_LIST_BYTES))" 65536)"
figure "challenge server watch traffic over ${IDLE}s idle with $USERS users (bytes read by the process)" "$WH_100k_IDLE_BYTES bytes (0 users: $WH_0_IDLE_BYTES bytes)" "<= 64 KiB" "$(cmp_le "$WH_100k_IDLE_BYTES" 65536)"

# --- the challenge pages with 100,000 users in place -------------------------

# The controller and a second, idle replica run meanwhile, as with the
# small set: what they read during the lockout burst is what enrolment
# writes cost their watches.
start_controller
CTRL_PID_RUNNING=$CTRL_PID
MAIN_URL=$WH_URL MAIN_PID=$WH_PID
start_webhook
IDLE_REPLICA_PID=$WH_PID
WH_URL=$MAIN_URL WH_PID=$MAIN_PID
run_pages big "$((USERS / 10))" "$((USERS / 5))" "$VERIFY_USERS" "$ENROL_USERS" "$LOCKOUT_USERS"

for kind in verify_code verify_page enrol_page enrol_confirm; do
  case $kind in
  verify_code) what="TOTP verify, POST of a valid code" ;;
  verify_page) what="challenge page GET of an enrolled user" ;;
  enrol_page) what="enrolment page GET of a new user (QR code)" ;;
  enrol_confirm) what="enrolment confirm POST" ;;
  esac
  figure "$what, p50 / p99 with $USERS users (with $SMALL users, same run)" \
    "$(pv "big_${kind}_p50_ms") / $(pv "big_${kind}_p99_ms") ms ($(pv "small_${kind}_p50_ms") / $(pv "small_${kind}_p99_ms") ms)" \
    "p50 with $USERS users <= 2x with $SMALL" "$(within 2 "$(pv "big_${kind}_p50_ms")" "$(pv "small_${kind}_p50_ms")")"
done
secs=$P_big_lockout_seconds
figure "lockout burst: $LOCKOUT_USERS users x 5 wrong codes, 16 browsers at once, $USERS users" \
  "$P_big_lockout_n refusals in $secs s, $(awk -v n="$P_big_lockout_puts" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') Secret writes/s, p50 / p99 $P_big_lockout_p50_ms / $P_big_lockout_p99_ms ms (with $SMALL users: $P_small_lockout_p50_ms / $P_small_lockout_p99_ms ms), answers $P_big_lockout_status, $P_big_lockout_errors errors, $P_big_lockout_conflicts conflicts (409) of $P_big_lockout_puts Secret updates" \
  "no errors; p50 <= 2x with $SMALL users" "$([ "$P_big_lockout_errors" = 0 ] && within 2 "$P_big_lockout_p50_ms" "$P_small_lockout_p50_ms" || echo 0)"
figure "bytes read during the lockout burst ($P_big_lockout_puts enrolment Secret writes) by an idle challenge-server replica / by the controller" \
  "$((lock_r1 - lock_r0)) / $((lock_c1 - lock_c0)) bytes" "each <= 64 KiB: neither watches enrolments" "$([ "$((lock_r1 - lock_r0))" -le 65536 ] && [ "$((lock_c1 - lock_c0))" -le 65536 ] && echo 1 || echo 0)"
figure "challenge server RSS after the pages, $USERS users" "$(mb "$(rss_kb "$WH_PID")") MB" "none, reported" 1
stop_bg "$WH_PID"
stop_bg "$IDLE_REPLICA_PID"
stop_bg "$CTRL_PID"

# --- the API server, etcd and `mfa-operator users` ---------------------------

api=$(proc_pid kube-apiserver) etcd=$(proc_pid etcd)
figure "kube-apiserver RSS, 0 -> $USERS enrolment Secrets" "$(mb "$API_RSS_0") -> $(mb "$(rss_kb "$api")") MB" "none, reported" 1
figure "etcd RSS, 0 -> $USERS enrolment Secrets (database file)" "$(mb "$ETCD_RSS_0") -> $(mb "$(rss_kb "$etcd")") MB ($(du -m "$STATE/etcd/member/snap/db" | cut -f1) MB)" "none, reported" 1

log "mfa-operator users with $USERS users"
/usr/bin/time -f '%e %M' -o "$SCALE_WORK/users-time" "$BIN" users --kubeconfig "$KC" --namespace "$NS" >"$SCALE_WORK/users-out" 2>"$SCALE_WORK/logs/users-cli.log" ||
  die "mfa-operator users failed (see $SCALE_WORK/logs/users-cli.log)"
read -r secs maxkb <"$SCALE_WORK/users-time"
rows=$(($(wc -l <"$SCALE_WORK/users-out") - 1))
figure "mfa-operator users with $USERS users ($rows rows)" "$secs s, max RSS $(mb "$maxkb") MB" "<= 60 s and <= 256 MB" "$([ "$(cmp_le "$secs" 60)" = 1 ] && cmp_le "$maxkb" 262144 || echo 0)"
log "done; logs in $SCALE_WORK/logs"
