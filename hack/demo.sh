#!/usr/bin/env bash
# The whole product on one machine, every part a local process on 127.0.0.1:
# etcd + kube-apiserver (hack/cluster.sh), the CRDs and RBAC from config/,
# the operator (`mfa-operator controller --manage-deployment=false`), the
# challenge server (`mfa-operator webhook`, in cluster mode, as its
# Deployment would run it), the sample app, and in front of it nginx
# configured as ingress-nginx renders auth-url/auth-signin, or Traefik with a
# forwardAuth middleware (FRONT_DOOR=traefik, hack/lib/traefik.sh).
#
#   hack/demo.sh up [--detach] [--no-samples]
#                        start everything; in the foreground (default, as
#                        make demo runs it) it runs until Ctrl-C, or until
#                        hack/demo.sh down from another terminal, and then
#                        stops everything; --detach returns once ready
#   hack/demo.sh down [--purge]
#                        stop everything (--purge also deletes the state)
#   hack/demo.sh restart controller|webhook|nginx|traefik|sampleapp
#   hack/demo.sh status  what runs
#   hack/demo.sh env     the settings of the running demo (KEY='VALUE', as
#                        in $DEMO_STATE/demo.env, which `.` reads in a shell)
#
# Settings (environment; defaults in brackets):
#   FRONT_DOOR [nginx]      the proxy in front of the sample app: nginx or
#                            traefik (built by hack/build-traefik.sh, make traefik)
#   DEMO_STATE [tmp/demo]   state: certificates, etcd data, logs, pid files
#   DEMO_HOST [app.localhost] DEMO_PORT [18080]   where the front door serves the app
#   DEMO_WEBHOOK_PORT [18090] DEMO_APP_PORT [18070]
#   DEMO_WEBHOOK_METRICS_PORT [18093]   the challenge server's /metrics
#   DEMO_METRICS_PORT [18091] DEMO_PROBE_PORT [18092]   the controller's
#   DEMO_APISERVER_PORT [16443] DEMO_ETCD_PORT [12379] DEMO_ETCD_PEER_PORT [12380]
#   DEMO_NAMESPACE [mfa-system]  the operator's namespace
#   DEMO_POLICY [the first MFAPolicy in DEMO_SAMPLES, else apps/admin]
#                            namespace/name of the policy nginx asks about
#                            (when no applied Ingress has an auth-url)
#   DEMO_SAMPLES [config/samples]  applied at start-up (unless --no-samples),
#                            example hosts replaced by local ones; nginx is
#                            then configured from the sample Ingress
#   DEMO_SAMPLES_NAMESPACE [default]  where the samples go
#   DEMO_USER [ana@example.com] DEMO_PASSWORD [random]   first-factor login
#   DEMO_USER2 [bob@example.com] DEMO_PASSWORD2 [random] a second login
#   DEMO_COOKIE_DOMAIN []      --cookie-domain (empty: host-only cookies)
#   DEMO_AUTH_RESPONSE_HEADERS [X-MFA-User,X-MFA-Multifactor,X-MFA-Assertion]
#                            auth-response-headers, when no Ingress says (with
#                            Traefik: the middleware's authResponseHeaders)
#   DEMO_FORWARD_AUTH_URL [the challenge server's /forward-auth/DEMO_POLICY]
#                            the address of Traefik's forwardAuth middleware
#   DEMO_WEBHOOK_SERVICE_ACCOUNT [mfa-challenge]  whose token the challenge
#                            server uses (admin when it does not exist)
#   DEMO_BIN [bin/mfa-operator]  the operator binary (built when missing)
#   DEMO_COMPONENTS [controller webhook sampleapp FRONT_DOOR]  what runs
#                            besides the control plane (tests of one part start fewer)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/cluster.sh
. "$root/hack/cluster.sh"
# shellcheck source=hack/demo-sso.sh
. "$root/hack/demo-sso.sh"
# shellcheck source=hack/lib/traefik.sh
. "$root/hack/lib/traefik.sh"

demo_settings() {
  cluster_settings
  DEMO_HOST=${DEMO_HOST:-app.localhost}
  DEMO_PORT=${DEMO_PORT:-18080}
  DEMO_WEBHOOK_PORT=${DEMO_WEBHOOK_PORT:-18090}
  DEMO_WEBHOOK_METRICS_PORT=${DEMO_WEBHOOK_METRICS_PORT:-18093}
  DEMO_APP_PORT=${DEMO_APP_PORT:-18070}
  DEMO_METRICS_PORT=${DEMO_METRICS_PORT:-18091}
  DEMO_PROBE_PORT=${DEMO_PROBE_PORT:-18092}
  DEMO_NAMESPACE=${DEMO_NAMESPACE:-mfa-system}
  DEMO_SAMPLES=${DEMO_SAMPLES-$root/config/samples}
  DEMO_SAMPLES_NAMESPACE=${DEMO_SAMPLES_NAMESPACE:-default}
  DEMO_BIN=${DEMO_BIN:-$root/bin/mfa-operator}
  DEMO_USER=${DEMO_USER:-ana@example.com}
  DEMO_USER2=${DEMO_USER2:-bob@example.com}
  DEMO_URL=http://$DEMO_HOST:$DEMO_PORT
  if [ -z "${DEMO_POLICY:-}" ]; then
    DEMO_POLICY=$(sample_policy || true)
    DEMO_POLICY=${DEMO_POLICY:-apps/admin}
  fi
  POLICY_NS=${DEMO_POLICY%%/*}
  POLICY_NAME=${DEMO_POLICY#*/}
  FRONT_DOOR=${FRONT_DOOR:-nginx}
  case "$FRONT_DOOR" in
  nginx | traefik) ;;
  *) die "FRONT_DOOR=$FRONT_DOOR: the front door is nginx or traefik" ;;
  esac
  DEMO_COMPONENTS=${DEMO_COMPONENTS-controller webhook sampleapp $FRONT_DOOR}
  ENV_FILE=$STATE/demo.env
  sso_settings
}

# wants NAME is true when component NAME is in DEMO_COMPONENTS.
wants() { [[ " $DEMO_COMPONENTS " == *" $1 "* ]]; }

# sample_policy prints namespace/name of the first MFAPolicy in DEMO_SAMPLES.
sample_policy() {
  [ -n "$DEMO_SAMPLES" ] && [ -d "$DEMO_SAMPLES" ] || return 1
  render_samples 2>/dev/null | awk '
    /^---/ { if (kind == "MFAPolicy" && name != "") { print ns "/" name; exit } kind = ""; name = ""; ns = "'"$DEMO_SAMPLES_NAMESPACE"'"; meta = 0; next }
    BEGIN { ns = "'"$DEMO_SAMPLES_NAMESPACE"'" }
    /^kind:/ { kind = $2 }
    /^metadata:/ { meta = 1; next }
    /^[^ ]/ { meta = 0 }
    meta && /^  name:/ { name = $2 }
    meta && /^  namespace:/ { ns = $2 }
    END { if (kind == "MFAPolicy" && name != "") print ns "/" name }' | head -n 1
}

kubectl_admin() { KUBECONFIG=$KUBECONFIG_ADMIN "$KUBECTL" "$@"; }

check_demo_tools() {
  if wants nginx; then
    command -v nginx >/dev/null || die "nginx is missing; run: make deps"
    [ -f /usr/lib/nginx/modules/ngx_http_set_misc_module.so ] ||
      die "nginx's set-misc module (libnginx-mod-http-set-misc) is missing; run: make deps"
  fi
  command -v openssl >/dev/null || die "openssl is missing; run: make deps"
  command -v go >/dev/null || die "go is missing"
}

build_binaries() {
  mkdir -p "$STATE/bin"
  if { wants controller || wants webhook; } && [ ! -x "$DEMO_BIN" ]; then
    log "building $DEMO_BIN"
    (cd "$root" && go build -o "$DEMO_BIN" .)
  fi
  if wants sampleapp; then (cd "$root" && go build -o "$STATE/bin/sampleapp" ./hack/sampleapp); fi
}

# ensure_passwords keeps the first-factor passwords in the state directory,
# so a restarted demo keeps its logins.
ensure_passwords() {
  local f=$STATE/passwords
  if [ ! -s "$f" ]; then
    (
      umask 077
      printf '%s\n%s\n' "${DEMO_PASSWORD:-$(openssl rand -hex 8)}" "${DEMO_PASSWORD2:-$(openssl rand -hex 8)}" >"$f"
    )
  fi
  DEMO_PASSWORD=${DEMO_PASSWORD:-$(sed -n 1p "$f")}
  DEMO_PASSWORD2=${DEMO_PASSWORD2:-$(sed -n 2p "$f")}
  mkdir -p "$STATE/nginx"
  (
    umask 077
    printf '%s:%s\n%s:%s\n' \
      "$DEMO_USER" "$(openssl passwd -apr1 "$DEMO_PASSWORD")" \
      "$DEMO_USER2" "$(openssl passwd -apr1 "$DEMO_PASSWORD2")" >"$STATE/nginx/htpasswd"
  )
}

# render_deploy_manifests prints config/default (else config/crd and
# config/rbac) without Deployments: here the operator and the challenge
# server run as local processes.
render_deploy_manifests() {
  local dir
  if [ -f "$root/config/default/kustomization.yaml" ]; then
    kubectl_admin kustomize "$root/config/default"
  else
    for dir in crd rbac; do
      if [ -f "$root/config/$dir/kustomization.yaml" ]; then
        kubectl_admin kustomize "$root/config/$dir"
        echo "---"
      fi
    done
  fi | awk '
    function flush() { if (doc != "" && kind != "Deployment") printf "%s---\n", doc; doc = ""; kind = "" }
    /^---/ { flush(); next }
    /^kind:/ { kind = $2 }
    { doc = doc $0 "\n" }
    END { flush() }'
}

# service_account_of KIND prints the serviceAccountName of the Deployment
# config/default would create for the controller.
controller_service_account() {
  [ -f "$root/config/default/kustomization.yaml" ] || return 1
  kubectl_admin kustomize "$root/config/default" | awk '
    /^---/ { kind = "" }
    /^kind:/ { kind = $2 }
    kind == "Deployment" && /serviceAccountName:/ { print $2; exit }'
}

install_manifests() {
  log "applying CRDs and RBAC from config/"
  if [ -f "$root/config/crd/kustomization.yaml" ]; then
    kubectl_admin apply --server-side --force-conflicts -k "$root/config/crd" >/dev/null
  else
    kubectl_admin apply --server-side --force-conflicts -f "$root/config/crd/bases" >/dev/null
  fi
  kubectl_admin get namespace "$DEMO_NAMESPACE" >/dev/null 2>&1 ||
    kubectl_admin create namespace "$DEMO_NAMESPACE" >/dev/null
  local rendered
  rendered=$(render_deploy_manifests)
  if [ -n "$rendered" ]; then
    printf '%s\n' "$rendered" | kubectl_admin apply --server-side --force-conflicts -f - >/dev/null
  fi
  kubectl_admin wait --for=condition=Established --timeout=60s \
    crd/mfapolicies.mfa.operator.dev crd/mfaproviders.mfa.operator.dev >/dev/null
}

# credentials writes the kubeconfigs of the controller and the challenge
# server: a token of the ServiceAccount their Deployment would run as when
# config/ declares one (so RBAC is exercised as in a cluster), else admin.
credentials() {
  local sa
  sa=$(controller_service_account || true)
  if [ -n "$sa" ] && kubectl_admin -n "$DEMO_NAMESPACE" get serviceaccount "$sa" >/dev/null 2>&1; then
    write_token_kubeconfig "$STATE/kubeconfig-controller" \
      "$(kubectl_admin -n "$DEMO_NAMESPACE" create token "$sa" --duration=168h)"
    log "the controller runs as ServiceAccount $DEMO_NAMESPACE/$sa"
  else
    cp "$KUBECONFIG_ADMIN" "$STATE/kubeconfig-controller"
    log "config/ declares no controller ServiceAccount; the controller runs as admin"
  fi
  sa=${DEMO_WEBHOOK_SERVICE_ACCOUNT:-mfa-challenge}
  if kubectl_admin -n "$DEMO_NAMESPACE" get serviceaccount "$sa" >/dev/null 2>&1; then
    write_token_kubeconfig "$STATE/kubeconfig-webhook" \
      "$(kubectl_admin -n "$DEMO_NAMESPACE" create token "$sa" --duration=168h)"
    log "the challenge server runs as ServiceAccount $DEMO_NAMESPACE/$sa"
  else
    cp "$KUBECONFIG_ADMIN" "$STATE/kubeconfig-webhook"
    log "no ServiceAccount $DEMO_NAMESPACE/$sa; the challenge server runs as admin"
  fi
}

common_flags() {
  printf '%s\n' \
    "--namespace=$DEMO_NAMESPACE" \
    "--public-url=$DEMO_URL" \
    "--cookie-domain=${DEMO_COOKIE_DOMAIN:-}" \
    "--trusted-proxies=127.0.0.1/32" \
    "--insecure-cookies=true"
}

start_controller() {
  local flags
  mapfile -t flags < <(common_flags)
  KUBECONFIG=$STATE/kubeconfig-controller start_proc controller "$DEMO_BIN" controller "${flags[@]}" \
    --manage-deployment=false \
    --kubeconfig="$STATE/kubeconfig-controller" \
    --metrics-bind-address="127.0.0.1:$DEMO_METRICS_PORT" \
    --health-probe-bind-address="127.0.0.1:$DEMO_PROBE_PORT"
  wait_for controller "the controller's /readyz" 90 http_ok "http://127.0.0.1:$DEMO_PROBE_PORT/readyz"
}

start_webhook() {
  local flags
  mapfile -t flags < <(common_flags)
  KUBECONFIG=$STATE/kubeconfig-webhook start_proc webhook "$DEMO_BIN" webhook "${flags[@]}" \
    --listen="127.0.0.1:$DEMO_WEBHOOK_PORT" \
    --metrics-addr="127.0.0.1:$DEMO_WEBHOOK_METRICS_PORT" \
    --grpc-addr=
  wait_for webhook "the challenge server's /readyz" 90 http_ok "http://127.0.0.1:$DEMO_WEBHOOK_PORT/readyz"
}

start_sampleapp() {
  start_proc sampleapp "$STATE/bin/sampleapp" --listen="127.0.0.1:$DEMO_APP_PORT" \
    --jwks-url="http://127.0.0.1:$DEMO_WEBHOOK_PORT/.well-known/jwks.json"
  wait_for sampleapp "the sample app's /healthz" 30 http_ok "http://127.0.0.1:$DEMO_APP_PORT/healthz"
}

# response_header_lines renders auth-response-headers as ingress-nginx does.
response_header_lines() {
  local i=0 h var
  IFS=',' read -ra hs <<<"${DEMO_AUTH_RESPONSE_HEADERS:-X-MFA-User,X-MFA-Multifactor,X-MFA-Assertion}"
  for h in "${hs[@]}"; do
    h=$(printf '%s' "$h" | tr -d '[:space:]')
    [ -n "$h" ] || continue
    var=$(printf '%s' "$h" | tr 'A-Z-' 'a-z_')
    # shellcheck disable=SC2016 # nginx variables, not shell ones
    printf '            auth_request_set $authHeader%d $upstream_http_%s;\n' "$i" "$var"
    printf "            proxy_set_header '%s' \$authHeader%d;\n" "$h" "$i"
    i=$((i + 1))
  done
}

render_nginx() {
  local conf=$STATE/nginx/nginx.conf tmpl=$root/hack/nginx/nginx.conf.tmpl
  local auth_url=${AUTH_URL:-${DEMO_AUTH_URL:-http://127.0.0.1:$DEMO_WEBHOOK_PORT/auth/$POLICY_NS/$POLICY_NAME}}
  local signin_url=${SIGNIN_URL:-${DEMO_SIGNIN_URL:-$DEMO_URL/challenge/$POLICY_NS/$POLICY_NAME}}
  DEMO_AUTH_URL=$auth_url DEMO_SIGNIN_URL=$signin_url
  local auth_host=${auth_url#*://}
  auth_host=${auth_host%%/*}
  local signin_loc user_directive=""
  signin_loc="@$(printf '%s%s' / "$signin_url" | sha1sum | cut -c1-40)"
  # As root the workers would otherwise switch to "nobody", which cannot
  # read the state directory; as any other user nginx keeps the user.
  if [ "$(id -u)" -eq 0 ]; then user_directive="user root root;"; fi
  mkdir -p "$STATE/nginx/tmp"
  local headers
  headers=$(response_header_lines)
  awk -v headers="$headers" '$0 == "@AUTH_RESPONSE_HEADERS@" { print headers; next } { print }' "$tmpl" |
    sed -e "s|@STATE@|$STATE|g" \
      -e "s|@USER_DIRECTIVE@|$user_directive|g" \
      -e "s|@PORT@|$DEMO_PORT|g" \
      -e "s|@HOST@|$DEMO_HOST|g" \
      -e "s|@APP_PORT@|$DEMO_APP_PORT|g" \
      -e "s|@WEBHOOK_PORT@|$DEMO_WEBHOOK_PORT|g" \
      -e "s|@AUTH_HOST@|$auth_host|g" \
      -e "s|@AUTH_URL@|$auth_url|g" \
      -e "s|@SIGNIN_URL@|$signin_url|g" \
      -e "s|@SIGNIN_LOCATION@|$signin_loc|g" \
      -e "s|@RESPONSE_HEADERS@|${DEMO_AUTH_RESPONSE_HEADERS:-X-MFA-User,X-MFA-Multifactor,X-MFA-Assertion}|g" \
      >"$conf"
  nginx -q -t -p "$STATE/nginx" -c "$conf" -e stderr 2>&1 | grep -v 'syntax is ok\|test is successful' >&2 || true
  nginx -q -t -p "$STATE/nginx" -c "$conf" -e stderr >/dev/null 2>&1 || die "nginx rejects $conf"
}

start_nginx() {
  render_nginx
  start_proc nginx "$(command -v nginx)" -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -e stderr
  # Any answer (401: the first factor is asked for) means nginx serves.
  wait_for nginx "nginx on $DEMO_URL" 30 curl -sS -o /dev/null --max-time 2 \
    --resolve "$DEMO_HOST:$DEMO_PORT:127.0.0.1" "$DEMO_URL/"
}

# render_samples prints DEMO_SAMPLES with the example URLs and hosts made
# local: the public URL (https://auth.example.com) is nginx's, the
# in-cluster challenge Service is the local challenge server, and every
# other *.example.com host is DEMO_HOST.
render_samples() {
  if [ -f "$DEMO_SAMPLES/kustomization.yaml" ]; then
    kubectl_admin kustomize "$DEMO_SAMPLES"
  else
    local f
    for f in "$DEMO_SAMPLES"/*.yaml; do
      cat "$f"
      echo "---"
    done
  fi | sed -E \
    -e "s#https://auth\.example\.com#$DEMO_URL#g" \
    -e "s#http://mfa-challenge\.$DEMO_NAMESPACE\.svc\.cluster\.local#http://127.0.0.1:$DEMO_WEBHOOK_PORT#g" \
    -e "s#[a-z0-9-]+\.example\.com#$DEMO_HOST#g"
}

apply_samples() {
  if [ -z "$DEMO_SAMPLES" ] || [ ! -d "$DEMO_SAMPLES" ]; then
    log "no samples in ${DEMO_SAMPLES:-(none)}; apply an MFAProvider and an MFAPolicy yourself"
    return 0
  fi
  log "applying $DEMO_SAMPLES in namespace $DEMO_SAMPLES_NAMESPACE (example hosts made local)"
  kubectl_admin get namespace "$DEMO_SAMPLES_NAMESPACE" >/dev/null 2>&1 ||
    kubectl_admin create namespace "$DEMO_SAMPLES_NAMESPACE" >/dev/null
  render_samples | kubectl_admin apply -n "$DEMO_SAMPLES_NAMESPACE" -f - >&2
  kubectl_admin wait --for=condition=Ready mfapolicy --all -A --timeout=60s >&2
}

# ingress_external_auth reads auth-url, auth-signin and
# auth-response-headers from the first Ingress that has an auth-url, so that
# nginx is configured from the applied Ingress as ingress-nginx would be.
ingress_external_auth() {
  local line
  line=$(kubectl_admin get ingress -A -o jsonpath='{range .items[*]}{.metadata.annotations.nginx\.ingress\.kubernetes\.io/auth-url}{"\t"}{.metadata.annotations.nginx\.ingress\.kubernetes\.io/auth-signin}{"\t"}{.metadata.annotations.nginx\.ingress\.kubernetes\.io/auth-response-headers}{"\n"}{end}' |
    awk -F'\t' '$1 != "" { print; exit }')
  [ -n "$line" ] || return 0
  IFS=$'\t' read -r AUTH_URL SIGNIN_URL DEMO_AUTH_RESPONSE_HEADERS <<<"$line"
  log "nginx follows the Ingress annotations: auth-url $AUTH_URL, auth-signin $SIGNIN_URL"
}

# env_line KEY VALUE prints KEY='VALUE', quoted for the shell (a ' in the
# value as '\''), so that `. demo.env` gives back every value as it was.
env_line() {
  local q="'"
  printf '%s=%s\n' "$1" "$q${2//$q/$q\\$q$q}$q"
}

# env_value VALUE undoes env_line's quoting.
env_value() {
  local q="'" v=$1
  v=${v#"$q"}
  v=${v%"$q"}
  printf '%s' "${v//$q\\$q$q/$q}"
}

write_env() {
  (
    umask 077
    {
      env_line DEMO_STATE "$STATE"
      env_line DEMO_URL "$DEMO_URL"
      env_line DEMO_HOST "$DEMO_HOST"
      env_line DEMO_PORT "$DEMO_PORT"
      env_line DEMO_POLICY "$DEMO_POLICY"
      env_line DEMO_NAMESPACE "$DEMO_NAMESPACE"
      env_line DEMO_USER "$DEMO_USER"
      env_line DEMO_PASSWORD "$DEMO_PASSWORD"
      env_line DEMO_USER2 "$DEMO_USER2"
      env_line DEMO_PASSWORD2 "$DEMO_PASSWORD2"
      env_line DEMO_WEBHOOK_URL "http://127.0.0.1:$DEMO_WEBHOOK_PORT"
      env_line DEMO_WEBHOOK_METRICS_URL "http://127.0.0.1:$DEMO_WEBHOOK_METRICS_PORT"
      env_line DEMO_APP_URL "http://127.0.0.1:$DEMO_APP_PORT"
      env_line DEMO_METRICS_URL "http://127.0.0.1:$DEMO_METRICS_PORT"
      env_line DEMO_PROBE_URL "http://127.0.0.1:$DEMO_PROBE_PORT"
      env_line DEMO_SIGNIN_URL "${DEMO_SIGNIN_URL:-$DEMO_URL/challenge/$POLICY_NS/$POLICY_NAME}"
      env_line DEMO_AUTH_URL "${DEMO_AUTH_URL:-http://127.0.0.1:$DEMO_WEBHOOK_PORT/auth/$POLICY_NS/$POLICY_NAME}"
      env_line FRONT_DOOR "$FRONT_DOOR"
      if wants traefik; then env_line DEMO_FORWARD_AUTH_URL "$DEMO_FORWARD_AUTH_URL"; fi
      env_line DEMO_AUTH_RESPONSE_HEADERS "${DEMO_AUTH_RESPONSE_HEADERS:-X-MFA-User,X-MFA-Multifactor,X-MFA-Assertion}"
      env_line DEMO_WEBHOOK_PORT "$DEMO_WEBHOOK_PORT"
      env_line DEMO_WEBHOOK_METRICS_PORT "$DEMO_WEBHOOK_METRICS_PORT"
      env_line DEMO_APP_PORT "$DEMO_APP_PORT"
      env_line DEMO_METRICS_PORT "$DEMO_METRICS_PORT"
      env_line DEMO_PROBE_PORT "$DEMO_PROBE_PORT"
      env_line DEMO_APISERVER_PORT "$DEMO_APISERVER_PORT"
      env_line DEMO_ETCD_PORT "$DEMO_ETCD_PORT"
      env_line DEMO_ETCD_PEER_PORT "$DEMO_ETCD_PEER_PORT"
      env_line DEMO_COMPONENTS "$DEMO_COMPONENTS"
      env_line DEMO_FIRST_FACTOR "$DEMO_FIRST_FACTOR"
      env_line DEMO_BIN "$DEMO_BIN"
      env_line KUBECONFIG "$KUBECONFIG_ADMIN"
      env_line KUBECTL "$KUBECTL"
      env_line APISERVER_URL "$APISERVER_URL"
    } >"$ENV_FILE"
  )
}

print_next_steps() {
  local front=nginx
  if wants traefik; then front=Traefik; fi
  cat <<EOF

mfa-operator demo is ready.

  Open            $DEMO_URL/
$(print_first_factor)
  Second factor   scan the QR code on the challenge page with an authenticator
                  app (Google Authenticator, FreeOTP, ...) and keep the recovery
                  codes it shows. Without a phone: save the QR code as qr.png, then
                  oathtool --totp -b "\$(zbarimg -q --raw qr.png | sed 's/.*secret=\([^&]*\).*/\1/')"
                  On $DEMO_URL/admin (with the sample policy) you may pick a security
                  key or passkey instead: the browser's own prompt registers it

  kubectl         export KUBECONFIG=$KUBECONFIG_ADMIN PATH=$KUBEBUILDER_ASSETS:\$PATH
                  kubectl get mfapolicies,mfaproviders -A -o wide
                  kubectl -n $POLICY_NS edit mfapolicy $POLICY_NAME   (in force within seconds)
EOF
  if wants controller; then
    echo
    kubectl_admin get mfapolicies,mfaproviders -A 2>/dev/null | sed 's/^/  /' || true
  fi
  cat <<EOF

  Logs            $STATE/logs/
  Settings        $ENV_FILE
EOF
}

demo_status() {
  demo_settings
  local n pid
  for n in etcd kube-apiserver controller webhook sampleapp nginx traefik; do
    if pid=$(pid_of "$n"); then echo "$n: running (pid $pid)"; else echo "$n: stopped"; fi
  done
}

demo_down() {
  demo_settings
  stop_proc nginx
  "$root/hack/sso.sh" down "$STATE/sso"
  stop_proc traefik
  stop_proc sampleapp
  stop_proc webhook
  stop_proc controller
  cluster_down
}

on_up_failure() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    log "start-up failed; stopping what was started (logs stay in $STATE/logs)"
    demo_down || true
  fi
  exit $rc
}

demo_up() {
  local detach=false samples=true a
  for a in "$@"; do
    case "$a" in
    --detach | -d) detach=true ;;
    --no-samples) samples=false ;;
    *) die "unknown option $a (usage: $0 up [--detach] [--no-samples])" ;;
    esac
  done
  demo_settings
  check_binaries
  check_demo_tools
  local n
  for n in etcd kube-apiserver controller webhook sampleapp nginx traefik; do
    if pid_of "$n" >/dev/null; then
      die "the demo in $STATE is already running ($n, pid $(pid_of "$n")); stop it first: $0 down"
    fi
  done
  rm -f "$STATE/stopping" "$STATE"/pids/*.restarting
  local ports=()
  if wants controller; then ports+=(DEMO_METRICS_PORT DEMO_PROBE_PORT); fi
  if wants webhook; then ports+=(DEMO_WEBHOOK_PORT DEMO_WEBHOOK_METRICS_PORT); fi
  if wants sampleapp; then ports+=(DEMO_APP_PORT); fi
  if wants nginx || wants traefik; then ports+=(DEMO_PORT); fi
  require_free_ports "${ports[@]}"
  trap on_up_failure EXIT
  local started=$SECONDS
  build_binaries
  ensure_passwords
  cluster_up
  install_manifests
  credentials
  if wants controller; then start_controller; fi
  if wants webhook; then start_webhook; fi
  if wants sampleapp; then start_sampleapp; fi
  if sso_wanted; then start_sso; fi
  if $samples && wants controller; then
    apply_samples
    if wants nginx; then ingress_external_auth; fi
    if sso_wanted; then sso_policy; fi
  fi
  if sso_wanted; then
    start_sso_nginx
  elif wants nginx; then
    start_nginx
  fi
  if wants traefik; then start_traefik; fi
  write_env
  trap - EXIT
  log "ready in $((SECONDS - started))s"
  print_next_steps
  if $detach; then
    echo "  Stop            $0 down   (or: make demo-down)"
    return 0
  fi
  # Ctrl-C is caught before the line that invites it, so that one pressed
  # at once still stops everything.
  stopping=false
  trap 'stopping=true' INT TERM
  echo "  Stop            Ctrl-C here, or $0 down (make demo-down) from another terminal"
  supervise
}

# supervise waits until Ctrl-C or until a process dies, then stops everything.
# The INT/TERM trap that sets stopping is installed by the caller.
supervise() {
  local n dead
  while ! $stopping; do
    dead=()
    for n in etcd kube-apiserver $DEMO_COMPONENTS; do
      # A component being restarted (hack/demo.sh restart) is not a failure.
      [ ! -e "$STATE/pids/$n.restarting" ] || continue
      pid_of "$n" >/dev/null || dead+=("$n")
    done
    # Checked after the processes: `hack/demo.sh down` marks the state
    # before it stops anything.
    if [ ! -d "$STATE" ] || [ -e "$STATE/stopping" ]; then
      log "stopped by $0 down"
      return 0
    fi
    for n in "${dead[@]}"; do
      log "$n exited; see $STATE/logs/$n.log"
      stopping=true
    done
    $stopping || { sleep 2 & wait $! || true; }
  done
  trap - INT TERM
  log "stopping"
  demo_down
}

# load_env takes the settings of the running demo (its demo.env) for those
# not set in the environment, so restart and status need no repeated settings.
load_env() {
  local f=${DEMO_STATE:-$root/tmp/demo}/demo.env k v
  [ -f "$f" ] || return 0
  while IFS='=' read -r k v; do
    case "$k" in
    DEMO_*PORT | DEMO_COMPONENTS | DEMO_BIN | DEMO_HOST | DEMO_POLICY | DEMO_NAMESPACE | DEMO_USER | DEMO_USER2 | \
      DEMO_AUTH_URL | DEMO_SIGNIN_URL | DEMO_AUTH_RESPONSE_HEADERS | DEMO_FORWARD_AUTH_URL | FRONT_DOOR)
      [ -n "${!k:-}" ] || export "$k=$(env_value "$v")"
      ;;
    esac
  done <"$f"
}

main() {
  local cmd=${1:-up}
  [ $# -eq 0 ] || shift
  case "$cmd" in
  up) demo_up "$@" ;;
  down)
    demo_settings
    # Tells a demo running in the foreground that it is being stopped.
    touch "$STATE/stopping"
    demo_down
    if [ "${1:-}" = "--purge" ]; then rm -rf "$STATE"; fi
    ;;
  restart)
    load_env
    demo_settings
    mkdir -p "$STATE/pids"
    touch "$STATE/pids/${1:-none}.restarting"
    # shellcheck disable=SC2064 # the name is fixed now
    trap "rm -f '$STATE/pids/${1:-none}.restarting'" EXIT
    case "${1:-}" in
    controller) stop_proc controller && start_controller ;;
    webhook) stop_proc webhook && start_webhook ;;
    nginx) stop_proc nginx && start_nginx ;;
    traefik) stop_proc traefik && start_traefik ;;
    sampleapp) stop_proc sampleapp && start_sampleapp ;;
    *) die "usage: $0 restart controller|webhook|nginx|traefik|sampleapp" ;;
    esac
    ;;
  status)
    load_env
    demo_status
    ;;
  env)
    demo_settings
    cat "$ENV_FILE"
    ;;
  *)
    echo "usage: $0 up [--detach] [--no-samples] | down [--purge] | restart NAME | status | env" >&2
    exit 2
    ;;
  esac
}

main "$@"
