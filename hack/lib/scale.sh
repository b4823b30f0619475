# shellcheck shell=bash
# What the scripts of hack/bench/scale share (sourced; root is the
# repository's root): hack/lib/proc.sh, hack/lib/measure.sh, scale_init
# and the control plane's start and clean-up.

# shellcheck source=hack/lib/proc.sh
. "$root/hack/lib/proc.sh"
# shellcheck source=hack/lib/measure.sh
. "$root/hack/lib/measure.sh"

# scale_init NAME sets SCALE_WORK (default tmp/scale-NAME, made absolute),
# STATE (SCALE_WORK/state), BIN (default bin/mfa-operator, absolute; it
# must exist) and exports KUBEBUILDER_ASSETS (default bin/k8s/<the
# version of k8s.io/client-go in go.mod>).
scale_init() {
  SCALE_WORK=${SCALE_WORK:-$root/tmp/scale-$1}
  mkdir -p "$SCALE_WORK"
  SCALE_WORK=$(cd "$SCALE_WORK" && pwd)
  STATE=$SCALE_WORK/state
  BIN=${BIN:-$root/bin/mfa-operator}
  [ -x "$BIN" ] || die "$BIN is missing; run: make build"
  BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
  if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
    KUBEBUILDER_ASSETS=$root/bin/k8s/$(awk '$1 == "k8s.io/client-go" { sub(/^v0\./, "v1.", $2); print $2; exit }' "$root/go.mod")
  fi
  export KUBEBUILDER_ASSETS
}

cluster=()

# scale_cluster_up starts etcd and kube-apiserver (hack/cluster.sh, state
# in SCALE_WORK/cluster, ports free ones), installs the CRDs and creates
# the namespace mfa-system. It sets cluster (the command prefix of
# hack/cluster.sh, for scale_cluster_clean), kc (the kubeconfig) and
# kubectl (a command with it).
scale_cluster_up() {
  cluster=(env DEMO_STATE="$SCALE_WORK/cluster" KUBEBUILDER_ASSETS="$KUBEBUILDER_ASSETS")
  "${cluster[@]}" "$root/hack/cluster.sh" clean >/dev/null 2>&1 || true
  cluster+=(DEMO_APISERVER_PORT="$(free_port)" DEMO_ETCD_PORT="$(free_port)" DEMO_ETCD_PEER_PORT="$(free_port)")
  log "starting etcd and kube-apiserver (hack/cluster.sh)"
  if ! "${cluster[@]}" "$root/hack/cluster.sh" up >"$SCALE_WORK/cluster.log" 2>&1; then
    tail -n 20 "$SCALE_WORK/cluster.log" >&2
    die "the local control plane did not start"
  fi
  kc=$SCALE_WORK/cluster/kubeconfig
  kubectl=(env KUBECONFIG="$kc" "$KUBEBUILDER_ASSETS/kubectl")
  "${kubectl[@]}" apply --server-side -f "$root/config/crd/bases" >/dev/null
  "${kubectl[@]}" wait --for=condition=Established --timeout=60s crd/mfapolicies.mfa.operator.dev crd/mfaproviders.mfa.operator.dev >/dev/null
  "${kubectl[@]}" create namespace mfa-system >/dev/null
}

# scale_cluster_clean stops the control plane scale_cluster_up started and
# removes its state; nothing when it did not start.
scale_cluster_clean() {
  [ "${#cluster[@]}" -gt 0 ] || return 0
  "${cluster[@]}" "$root/hack/cluster.sh" clean >>"$SCALE_WORK/cluster.log" 2>&1 || true
}
