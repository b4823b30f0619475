# shellcheck shell=bash
# What the scripts of hack/bench/scale share (sourced; root is the
# repository's root): hack/lib/proc.sh, and scale_init.

# shellcheck source=hack/lib/proc.sh
. "$root/hack/lib/proc.sh"

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
