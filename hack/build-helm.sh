#!/usr/bin/env bash
# Builds helm from its Go module into bin/helm-<version>/helm, as
# build-k8s.sh builds the control plane: a binary already there is reused,
# so only the first run on a machine pays for the compile.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

HELM_VERSION=${HELM_VERSION:-v3.22.0}
out="$root/bin/helm-$HELM_VERSION"
if [ -x "$out/helm" ]; then
  echo "$out/helm"
  exit 0
fi
mkdir -p "$out"
mod="$root/bin/.build/helm-$HELM_VERSION"
mkdir -p "$mod"
if [ ! -f "$mod/go.mod" ]; then
  printf 'module localtools/helm\n\ngo 1.25\n' >"$mod/go.mod"
  (cd "$mod" && go get "helm.sh/helm/v3@$HELM_VERSION")
fi
echo "building helm $HELM_VERSION (first time only; takes minutes)" >&2
(cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$out/helm.tmp" "$out/helm"
echo "$out/helm"
