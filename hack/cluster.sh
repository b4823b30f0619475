#!/usr/bin/env bash
# A local Kubernetes control plane: etcd and kube-apiserver as processes on
# 127.0.0.1 (the binaries hack/build-k8s.sh builds for envtest), TLS
# certificates made with openssl, an admin kubeconfig (client certificate in
# system:masters) and service-account signing keys, so ServiceAccount tokens
# and RBAC work as in a cluster. There is no scheduler, controller-manager or
# kubelet: objects are stored and served, nothing runs pods.
#
#   hack/cluster.sh up        start etcd and kube-apiserver, wait until ready
#   hack/cluster.sh down      stop them (state is kept)
#   hack/cluster.sh clean     stop them and delete the state directory
#   hack/cluster.sh env       print the settings as shell assignments
#
# Settings (environment):
#   DEMO_STATE                 state directory (default: tmp/demo in the repository)
#   DEMO_APISERVER_PORT        kube-apiserver secure port (default 16443)
#   DEMO_ETCD_PORT             etcd client port (default 12379)
#   DEMO_ETCD_PEER_PORT        etcd peer port (default 12380)
#   KUBEBUILDER_ASSETS         folder holding etcd, kube-apiserver, kubectl
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/proc.sh
. "$root/hack/lib/proc.sh"

cluster_settings() {
  STATE=${DEMO_STATE:-$root/tmp/demo}
  mkdir -p "$STATE"
  STATE=$(cd "$STATE" && pwd)
  DEMO_APISERVER_PORT=${DEMO_APISERVER_PORT:-16443}
  DEMO_ETCD_PORT=${DEMO_ETCD_PORT:-12379}
  DEMO_ETCD_PEER_PORT=${DEMO_ETCD_PEER_PORT:-12380}
  if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
    local v
    v=$(awk '$1 == "k8s.io/client-go" { sub(/^v0\./, "v1.", $2); print $2; exit }' "$root/go.mod")
    KUBEBUILDER_ASSETS=$root/bin/k8s/$v
  fi
  PKI=$STATE/pki
  KUBECONFIG_ADMIN=$STATE/kubeconfig
  APISERVER_URL=https://127.0.0.1:$DEMO_APISERVER_PORT
  KUBECTL=$KUBEBUILDER_ASSETS/kubectl
}

check_binaries() {
  local b
  for b in etcd kube-apiserver kubectl; do
    [ -x "$KUBEBUILDER_ASSETS/$b" ] || die "$KUBEBUILDER_ASSETS/$b is missing; run: make control-plane"
  done
  command -v openssl >/dev/null || die "openssl is missing; install it (apt-get install openssl)"
  command -v curl >/dev/null || die "curl is missing; install it (apt-get install curl)"
}

# make_pki creates, once per state directory, a CA, the API server's serving
# certificate (127.0.0.1, localhost), an admin client certificate and the
# service-account key pair.
make_pki() {
  [ -s "$PKI/admin.crt" ] && return 0
  log "creating certificates in $PKI"
  mkdir -p "$PKI"
  (
    cd "$PKI"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=mfa-operator-local-ca" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >apiserver.ext
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ca.srl
  )
}

write_admin_kubeconfig() {
  local k=(env KUBECONFIG="$KUBECONFIG_ADMIN" "$KUBECTL" config)
  rm -f "$KUBECONFIG_ADMIN"
  "${k[@]}" set-cluster local --server="$APISERVER_URL" --certificate-authority="$PKI/ca.crt" --embed-certs >/dev/null
  "${k[@]}" set-credentials admin --client-certificate="$PKI/admin.crt" --client-key="$PKI/admin.key" --embed-certs >/dev/null
  "${k[@]}" set-context local --cluster=local --user=admin >/dev/null
  "${k[@]}" use-context local >/dev/null
  chmod 600 "$KUBECONFIG_ADMIN"
}

# write_token_kubeconfig FILE TOKEN writes a kubeconfig that authenticates
# with a ServiceAccount token, as a pod's in-cluster config does.
write_token_kubeconfig() {
  local f=$1 token=$2
  local k=(env KUBECONFIG="$f" "$KUBECTL" config)
  rm -f "$f"
  "${k[@]}" set-cluster local --server="$APISERVER_URL" --certificate-authority="$PKI/ca.crt" --embed-certs >/dev/null
  "${k[@]}" set-credentials sa --token="$token" >/dev/null
  "${k[@]}" set-context local --cluster=local --user=sa >/dev/null
  "${k[@]}" use-context local >/dev/null
  chmod 600 "$f"
}

apiserver_ready() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    -o /dev/null "$APISERVER_URL/readyz"
}

cluster_up() {
  cluster_settings
  check_binaries
  make_pki
  local p
  require_free_ports DEMO_ETCD_PORT DEMO_ETCD_PEER_PORT DEMO_APISERVER_PORT

  mkdir -p "$STATE/etcd"
  chmod 700 "$STATE/etcd"
  start_proc etcd "$KUBEBUILDER_ASSETS/etcd" \
    --name=local --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$DEMO_ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$DEMO_ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$DEMO_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$DEMO_ETCD_PEER_PORT" \
    --initial-cluster="local=http://127.0.0.1:$DEMO_ETCD_PEER_PORT" \
    --unsafe-no-fsync=true --log-level=warn
  wait_for etcd "etcd /health" 60 http_ok "http://127.0.0.1:$DEMO_ETCD_PORT/health"

  start_proc kube-apiserver "$KUBEBUILDER_ASSETS/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$DEMO_ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$DEMO_APISERVER_PORT" \
    --cert-dir="$PKI/apiserver" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.96.0.0/24 \
    --endpoint-reconciler-type=none \
    --allow-privileged=true --profiling=false --enable-priority-and-fairness=false
  wait_for kube-apiserver "kube-apiserver /readyz" 120 apiserver_ready
  write_admin_kubeconfig
  log "control plane ready at $APISERVER_URL (KUBECONFIG=$KUBECONFIG_ADMIN)"
}

cluster_down() {
  cluster_settings
  stop_proc kube-apiserver
  stop_proc etcd
}

cluster_env() {
  cluster_settings
  cat <<EOF
export KUBECONFIG='$KUBECONFIG_ADMIN'
KUBECTL='$KUBECTL'
APISERVER_URL='$APISERVER_URL'
EOF
}

# Run as a command unless sourced by hack/demo.sh.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
  up) cluster_up ;;
  down) cluster_down ;;
  clean)
    cluster_down
    rm -rf "$STATE"
    ;;
  env) cluster_env ;;
  *)
    echo "usage: $0 up|down|clean|env" >&2
    exit 2
    ;;
  esac
fi
