# The single sign-on first factor of hack/demo.sh (sourced by it): glewlwyd
# and oauth2-proxy from hack/sso.sh, the demo's MFAPolicy reading the user
# from them (identity.forwardAuth, with glewlwyd's ID token), and nginx
# asking the challenge server alone (one auth URL for both factors).
#
# Settings: DEMO_FIRST_FACTOR [sso] (or FIRST_FACTOR): sso, or basic for
# nginx's basic login standing in for the first factor;
# DEMO_SSO_IDP_PORT [18094] DEMO_SSO_PROXY_PORT [18095].

sso_settings() {
  DEMO_FIRST_FACTOR=${DEMO_FIRST_FACTOR:-${FIRST_FACTOR:-sso}}
  case $DEMO_FIRST_FACTOR in sso | basic) ;; *) die "DEMO_FIRST_FACTOR must be sso or basic, not $DEMO_FIRST_FACTOR" ;; esac
  DEMO_SSO_IDP_PORT=${DEMO_SSO_IDP_PORT:-18094}
  DEMO_SSO_PROXY_PORT=${DEMO_SSO_PROXY_PORT:-18095}
}

sso_wanted() { [ "$DEMO_FIRST_FACTOR" = sso ] && wants nginx; }

# start_sso starts glewlwyd and oauth2-proxy; their users become the
# demo's logins.
start_sso() {
  log "starting the single sign-on: glewlwyd on 127.0.0.1:$DEMO_SSO_IDP_PORT, oauth2-proxy on 127.0.0.1:$DEMO_SSO_PROXY_PORT"
  SSO_IDP_PORT=$DEMO_SSO_IDP_PORT SSO_PROXY_PORT=$DEMO_SSO_PROXY_PORT SSO_APP_URL=$DEMO_URL \
    SSO_PASSWORD=$DEMO_PASSWORD SSO_PASSWORD2=$DEMO_PASSWORD2 "$root/hack/sso.sh" up "$STATE/sso" >&2
  # shellcheck disable=SC1091
  . "$STATE/sso/sso.env"
  DEMO_USER=$SSO_USER DEMO_USER2=$SSO_USER2
}

# sso_policy points the demo's MFAPolicy at the single sign-on.
sso_policy() {
  kubectl_admin get mfapolicy -n "$POLICY_NS" "$POLICY_NAME" >/dev/null 2>&1 || return 0
  log "MFAPolicy $DEMO_POLICY reads the user from the single sign-on (identity.forwardAuth)"
  kubectl_admin patch mfapolicy -n "$POLICY_NS" "$POLICY_NAME" --type=merge -p "{\"spec\":{\"identity\":{\"header\":null,\"forwardAuth\":{
    \"url\":\"$SSO_AUTH_URL\",\"signinURL\":\"$SSO_SIGNIN_URL\",
    \"token\":{\"issuer\":\"$SSO_ISSUER\",\"audiences\":[\"$SSO_CLIENT_ID\"],\"jwksURL\":\"$SSO_JWKS_URL\",\"userClaim\":\"email\"}}}}}" >&2
  kubectl_admin wait --for=condition=Ready mfapolicy -n "$POLICY_NS" "$POLICY_NAME" --timeout=60s >&2
}

start_sso_nginx() {
  SSO_PROXY_PORT=$DEMO_SSO_PROXY_PORT "$root/hack/sso.sh" nginx "$STATE/nginx" "$DEMO_PORT" "$DEMO_HOST" \
    "$DEMO_APP_PORT" "$DEMO_WEBHOOK_PORT" "$POLICY_NS/$POLICY_NAME"
  nginx -q -t -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -e stderr >/dev/null 2>&1 || die "nginx rejects $STATE/nginx/nginx.conf"
  start_proc nginx "$(command -v nginx)" -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -e stderr
  wait_for nginx "nginx on $DEMO_URL" 30 curl -sS -o /dev/null --max-time 2 \
    --resolve "$DEMO_HOST:$DEMO_PORT:127.0.0.1" "$DEMO_URL/oauth2/ping"
}

print_first_factor() {
  if sso_wanted; then
    echo "  First factor    single sign-on: glewlwyd (OpenID Connect, $SSO_ISSUER)"
    echo "                  through oauth2-proxy; user $DEMO_USER  password $DEMO_PASSWORD"
    echo "                  (or $DEMO_USER2 / $DEMO_PASSWORD2); FIRST_FACTOR=basic for nginx's basic login"
  else
    echo "  First factor    user $DEMO_USER  password $DEMO_PASSWORD"
    echo "                  (or $DEMO_USER2 / $DEMO_PASSWORD2); ${front:-nginx}'s basic login stands"
    echo "                  in for an upstream login such as oauth2-proxy"
  fi
}
