#!/usr/bin/env bash
# Scale: the controller at 10,000 policies. A local kube-apiserver and etcd
# (hack/cluster.sh), the controller (`mfa-operator controller
# --manage-deployment=false`), and POLICIES benchmark policies created at
# once (hack/bench/ctrlbench). Prints each policy's time from create to
# Ready, the time from the last create to all Ready and to the bundle
# holding all of them, the controller's CPU and memory, and the time one
# policy edit takes to be in force on two challenge servers following the
# cluster (`mfa-operator webhook`).
#
#   hack/bench/scale/controller.sh     (from the repository root; make build first)
#
# The bundle is judged from the controller's log ("bundle written" with
# the policy count), whatever form it takes in the cluster. A form that
# cannot hold POLICIES policies (one Secret of at most 1 MiB holds about
# 1,700 of the benchmark's) makes the controller fail to write it: the
# figure is then the time the bundle was built, and says so, and the edit
# is measured after deleting policies down to EDIT_FALLBACK.
#
# Environment: BIN (default bin/mfa-operator), TOOLS (a folder holding a
# built ctrlbench; built here when unset), KUBEBUILDER_ASSETS (default
# bin/k8s/<version of go.mod>), SCALE_WORK (default tmp/scale-controller),
# POLICIES (default 10000), EDIT_FALLBACK (default 1000), CONTROLLER_FLAGS
# (more flags for the controller, e.g. --pprof-bind-address=127.0.0.1:6060
# to profile it during the run).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
# shellcheck source=hack/lib/scale.sh
. "$root/hack/lib/scale.sh"
scale_init controller
POLICIES=${POLICIES:-10000}
EDIT_FALLBACK=${EDIT_FALLBACK:-1000}

ctrlbench=${TOOLS:+$TOOLS/ctrlbench}
if [ -z "$ctrlbench" ] || [ ! -x "$ctrlbench" ]; then
  log "building hack/bench/ctrlbench"
  mkdir -p "$SCALE_WORK/tools"
  go build -o "$SCALE_WORK/tools/ctrlbench" ./hack/bench/ctrlbench
  ctrlbench=$SCALE_WORK/tools/ctrlbench
fi

cleanup() {
  local p
  for p in webhook-2 webhook-1 controller; do
    stop_proc "$p" 2>/dev/null || true
  done
  scale_cluster_clean
}
trap cleanup EXIT

log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (a busy machine makes every figure slower)"
scale_cluster_up

rm -rf "$STATE/logs"
probe=$(free_port)
# shellcheck disable=SC2086 # CONTROLLER_FLAGS is split into flags on purpose
start_proc controller "$BIN" controller --namespace mfa-system \
  --trusted-proxies 127.0.0.1/32 --insecure-cookies --manage-deployment=false \
  --kubeconfig "$kc" --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe" ${CONTROLLER_FLAGS:-}
wait_for controller "the controller's /readyz" 120 http_ok "http://127.0.0.1:$probe/readyz"
cpid=$(pid_of controller)
ctrl_log=$STATE/logs/controller.log

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

log "creating $POLICIES MFAPolicies (ctrlbench)"
t0=$(cpu_ticks "$cpid")
out=$("$ctrlbench" -kubeconfig "$kc" -n "$POLICIES" -operator-namespace mfa-system -operator-pid "$cpid" \
  -controller-log "$ctrl_log" -write-grace 60s -timeout 60m) || {
  tail -n 20 "$ctrl_log" >&2
  die "$POLICIES policies did not all become Ready with a bundle"
}
t1=$(cpu_ticks "$cpid")
rss_kb=$(status_kb "$cpid" VmRSS)
peak_kb=$(status_kb "$cpid" VmHWM)
printf '%s\n' "$out" >&2
result() { grep -o "\b$1=[^ ]*" <<<"$out" | head -n 1 | cut -d= -f2; }
apply_s=$(result apply_s)
ready_after_last=$(result ready_after_last_s)
bundle_after_last=$(result bundle_after_last_s)
bundle_from=$(result bundle_from)
ready_p50=$(result ready_p50_s)
ready_p99=$(result ready_p99_s)
ready_max=$(result ready_max_s)
cpu_s=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) / hz }')

edit_n=$POLICIES
if [ "$bundle_from" != written ]; then
  log "the bundle of $POLICIES policies was built but not written (the controller's log says why); deleting policies down to $EDIT_FALLBACK for the edit"
  since=$(date -u +%FT%T)
  "$ctrlbench" shrink -kubeconfig "$kc" -n "$POLICIES" -to "$EDIT_FALLBACK" -timeout 30m
  written_with() { awk -v since="$since" -v n="$1" 'index($0, "\"msg\":\"bundle written\"") && index($0, "\"policies\":" n ",") && substr($0, 10, 19) >= since { found = 1 } END { exit !found }' "$ctrl_log"; }
  wait_for controller "a bundle of $EDIT_FALLBACK policies written" 1800 written_with "$EDIT_FALLBACK"
  edit_n=$EDIT_FALLBACK
fi

servers=()
for i in 1 2; do
  port=$(free_port)
  KUBECONFIG=$kc start_proc "webhook-$i" "$BIN" webhook --namespace mfa-system --listen "127.0.0.1:$port" \
    --metrics-addr 0 --grpc-addr= --trusted-proxies 127.0.0.1/32 --insecure-cookies=true --public-url "http://127.0.0.1:$port"
  servers+=("http://127.0.0.1:$port")
done
for i in 1 2; do
  wait_for "webhook-$i" "challenge server $i's /readyz" 300 http_ok "${servers[$((i - 1))]}/readyz"
done
log "editing one policy among $edit_n, in force on ${#servers[@]} challenge servers (ctrlbench edit)"
edit=$("$ctrlbench" edit -kubeconfig "$kc" -n "$edit_n" -controller-log "$ctrl_log" -servers "$(
  IFS=,
  echo "${servers[*]}"
)" -timeout 5m) || {
  tail -n 20 "$ctrl_log" >&2
  die "the edit did not come into force"
}
printf '%s\n' "$edit" >&2
edit_s=$(grep -o '\bedit_s=[^ ]*' <<<"$edit" | cut -d= -f2)
edit_written_s=$(grep -o '\bwritten_s=[^ ]*' <<<"$edit" | cut -d= -f2)

goal() { if awk -v v="$1" -v g="$2" 'BEGIN { exit !(v <= g) }'; then echo met; else echo "NOT met"; fi; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.0f", kb / 1024 }'; }
echo "FIGURE controller, $POLICIES policies created in ${apply_s}s: slowest policy from create to Ready: ${ready_max}s, p99 ${ready_p99}s, p50 ${ready_p50}s (goal 60s: $(goal "$ready_max" 60))"
echo "FIGURE controller, $POLICIES policies: all Ready ${ready_after_last}s after the last create (goal 60s: $(goal "$ready_after_last" 60))"
if [ "$bundle_from" = written ]; then
  echo "FIGURE controller, $POLICIES policies: bundle written with all of them ${bundle_after_last}s after the last create (goal 30s: $(goal "$bundle_after_last" 30))"
else
  echo "FIGURE controller, $POLICIES policies: bundle BUILT (not written: the bundle's form holds fewer) with all of them ${bundle_after_last}s after the last create (goal 30s: $(goal "$bundle_after_last" 30))"
fi
echo "FIGURE controller, $POLICIES policies: CPU ${cpu_s}s from the first create to all Ready and bundled, RSS $(mb "$rss_kb") MB, peak $(mb "$peak_kb") MB (goal reported: met)"
echo "FIGURE controller, one edit among $edit_n policies in force on ${#servers[@]} challenge servers: ${edit_s}s, of which ${edit_written_s}s until the controller wrote the bundle, the rest the servers loading it (goal 5s: $(goal "$edit_s" 5))"
