#!/usr/bin/env bash
# Scale: the stored bundle at 10,000 policies. A local kube-apiserver and
# etcd (hack/cluster.sh), the controller, and POLICIES benchmark policies
# (hack/bench/ctrlbench, until the bundle holds them all: how fast they get
# Ready is the controller section's figure); then one policy edit
# (hack/bench/bundleedit).
# Prints the bytes the bundle takes in the API server (manifest and
# shards), its largest object, its shards, and the bytes one policy edit
# writes. See docs/bundle.md.
#
#   hack/bench/scale/bundle.sh     (from the repository root; make build first)
#
# Environment: BIN (default bin/mfa-operator), TOOLS (a folder holding a
# built ctrlbench; built here when unset), KUBEBUILDER_ASSETS (default
# bin/k8s/<version of go.mod>), SCALE_WORK (default tmp/scale-bundle),
# POLICIES (default 10000).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
# shellcheck source=hack/lib/scale.sh
. "$root/hack/lib/scale.sh"
scale_init bundle
POLICIES=${POLICIES:-10000}

tools=$SCALE_WORK/tools
mkdir -p "$tools"
ctrlbench=${TOOLS:+$TOOLS/ctrlbench}
if [ -z "$ctrlbench" ] || [ ! -x "$ctrlbench" ]; then
  log "building hack/bench/ctrlbench"
  go build -o "$tools/ctrlbench" ./hack/bench/ctrlbench
  ctrlbench=$tools/ctrlbench
fi
log "building hack/bench/bundleedit"
go build -o "$tools/bundleedit" ./hack/bench/bundleedit

cleanup() {
  local pid=""
  [ ! -s "$STATE/pids/controller.pid" ] || read -r pid <"$STATE/pids/controller.pid"
  stop_proc controller 2>/dev/null || true
  # start_proc may have failed before it recorded the process.
  [ -z "$pid" ] || ! running "$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  scale_cluster_clean
}
trap cleanup EXIT

scale_cluster_up

probe=$(free_port)
start_proc controller "$BIN" controller --namespace mfa-system \
  --trusted-proxies 127.0.0.1/32 --insecure-cookies --manage-deployment=false \
  --kubeconfig "$kc" --metrics-bind-address 0 --health-probe-bind-address "127.0.0.1:$probe"
wait_for controller "the controller's /readyz" 120 http_ok "http://127.0.0.1:$probe/readyz"

log "creating $POLICIES MFAPolicies (ctrlbench)"
cpid=$(pid_of controller)
out=$("$ctrlbench" -kubeconfig "$kc" -n "$POLICIES" -operator-namespace mfa-system -operator-pid "$cpid" -bundle-only -timeout 30m) || {
  tail -n 20 "$STATE/logs/controller.log" >&2
  die "$POLICIES policies did not all become Ready with a bundle"
}
printf '%s\n' "$out" >&2
result() { sed -n "s/^RESULT .* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
total=$(result bundle_bytes "$out")
shards=$(result shards "$out")
largest=$(result largest_object_bytes "$out")

log "editing one policy among $POLICIES (bundleedit)"
edit=$("$tools/bundleedit" -kubeconfig "$kc" -operator-namespace mfa-system -policy "apps/policy-$(printf %04d $((POLICIES / 2)))") || {
  tail -n 20 "$STATE/logs/controller.log" >&2
  die "the edit did not reach the bundle"
}
printf '%s\n' "$edit" >&2
rewritten=$(result rewritten_bytes "$edit")

goal() { if awk -v v="$1" -v g="$2" 'BEGIN { exit !(v <= g) }'; then echo met; else echo "NOT met"; fi; }
mib=1048576
echo "FIGURE bundle stored for $POLICIES policies (manifest + shards): $total bytes (goal no object over 1 MiB: $(goal "$largest" $((mib - 1))))"
echo "FIGURE bundle largest object: $largest bytes (goal < 1 MiB, the Secret limit: $(goal "$largest" $((mib - 1))))"
echo "FIGURE bundle shards for $POLICIES policies: $shards (goal each < 512 KiB: $(goal "$largest" $((mib / 2 - 1))))"
echo "FIGURE bundle bytes written by one policy edit: $rewritten bytes (goal <= 256 KiB, one shard and the manifest: $(goal "$rewritten" $((mib / 4))))"
