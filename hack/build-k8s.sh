#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, etcd, kubectl) from their Go
# modules into bin/k8s/<version>/. Binaries already there are reused, so only
# the first run on a machine pays for the compile.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The Kubernetes version follows the client-go in go.mod (v0.X.Y -> v1.X.Y).
client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' go.mod 2>/dev/null || true)
K8S_VERSION=${K8S_VERSION:-${client_go/#v0./v1.}}
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
staging_version=${K8S_VERSION/#v1./v0.}

out="$root/bin/k8s/$K8S_VERSION"
mkdir -p "$out"

need=()
for b in kube-apiserver kubectl etcd; do
  [ -x "$out/$b" ] || need+=("$b")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi

work="$root/bin/.build"
mkdir -p "$work"

build_kube() {
  local mod="$work/kubernetes-$K8S_VERSION"
  mkdir -p "$mod"
  if [ ! -f "$mod/go.mod" ]; then
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | awk -F'"' '/"GoMod"/ { print $4 }')
    {
      echo "module localcontrolplane/kubernetes"
      echo
      echo "go 1.25"
      echo
      # Every staging module that k8s.io/kubernetes replaces with a local path
      # is pinned to its published version instead.
      sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#replace \1 => \1 '"$staging_version"'#p' "$gomod"
    } >"$mod/go.mod"
    (cd "$mod" && go get "k8s.io/kubernetes@$K8S_VERSION")
  fi
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  for b in kube-apiserver kubectl; do
    if [ ! -x "$out/$b" ]; then
      echo "building $b $K8S_VERSION (first time only; takes minutes)" >&2
      (cd "$mod" && GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b")
      mv "$out/$b.tmp" "$out/$b"
    fi
  done
}

build_etcd() {
  local mod="$work/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  if [ ! -f "$mod/go.mod" ]; then
    printf 'module localcontrolplane/etcd\n\ngo 1.25\n' >"$mod/go.mod"
    (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  fi
  echo "building etcd $ETCD_VERSION (first time only)" >&2
  (cd "$mod" && GOFLAGS=-mod=mod go build -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$out/etcd.tmp" "$out/etcd"
}

[ -x "$out/etcd" ] || build_etcd
{ [ -x "$out/kube-apiserver" ] && [ -x "$out/kubectl" ]; } || build_kube
echo "$out"
