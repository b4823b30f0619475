#!/usr/bin/env bash
# A real single sign-on on this machine, as the first factor in front of the
# challenge server: Debian's glewlwyd (an OpenID Connect provider) with
# local users in its SQLite database, and oauth2-proxy (built once into
# bin/oauth2-proxy) as its client, answering /oauth2/auth for the front door.
#
#   hack/sso.sh up DIR     start both, configured; settings in DIR/sso.env
#   hack/sso.sh down DIR   stop them
#   hack/sso.sh oauth2-proxy   only build bin/oauth2-proxy (when missing)
#   hack/sso.sh nginx DIR PORT HOST APP_PORT WEBHOOK_PORT NS/POLICY
#                          render DIR/nginx.conf: the app behind /auth, with
#                          oauth2-proxy's /oauth2/ and the challenge pages
#
# Settings (environment; defaults in brackets):
#   SSO_IDP_PORT [18591]      glewlwyd, http://127.0.0.1:PORT (issuer .../api/oidc)
#   SSO_PROXY_PORT [18592]    oauth2-proxy, http://127.0.0.1:PORT
#   SSO_APP_URL [http://app.localhost:18080]   where the front door serves
#                             oauth2-proxy's /oauth2/ (its callback and start)
#   SSO_USER [ana] SSO_USER2 [bob]   users (email USER@example.com); their
#   SSO_PASSWORD, SSO_PASSWORD2 [random]   passwords
#   SSO_USER3 [carol] SSO_PASSWORD3 [random]   a user whose login at the IdP
#                             asks for a one-time code too (glewlwyd's OTP
#                             scheme, TOTP secret SSO_TOTP_SECRET3 in sso.env):
#                             her ID tokens say "amr": ["password", "otp"]
#   SSO_COOKIE_EXPIRE [8h]    oauth2-proxy's session lifetime
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
O2P_VERSION=v7.15.6
O2P=$root/bin/oauth2-proxy

sso_oauth2_proxy() {
  [ -x "$O2P" ] && return 0
  echo "building oauth2-proxy $O2P_VERSION into bin/ (once)" >&2
  GOBIN=$root/bin go install "github.com/oauth2-proxy/oauth2-proxy/v7@$O2P_VERSION"
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# api METHOD PATH JSON COOKIEJAR: one call of glewlwyd's API; fails loudly.
api() {
  local out code
  out=$(curl -sS -X "$1" -b "$4" -c "$4" -H 'Content-Type: application/json' --data "$3" -w '\n%{http_code}' "$IDP/api$2")
  code=${out##*$'\n'}
  case $code in 2??) ;; *) echo "glewlwyd $1 $2: $code ${out%$'\n'*}" >&2; return 1 ;; esac
}

wait_http() { # wait_http URL WHAT
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$2 did not answer at $1" >&2
  return 1
}

sso_up() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  command -v glewlwyd >/dev/null || "$root/hack/install-deps.sh"
  sso_oauth2_proxy
  local idp_port=${SSO_IDP_PORT:-18591} proxy_port=${SSO_PROXY_PORT:-18592}
  local app_url=${SSO_APP_URL:-http://app.localhost:18080}
  IDP=http://127.0.0.1:$idp_port
  local issuer=$IDP/api/oidc user1=${SSO_USER:-ana} user2=${SSO_USER2:-bob}
  local pw1=${SSO_PASSWORD:-$(rand_hex 8)} pw2=${SSO_PASSWORD2:-$(rand_hex 8)}
  local user3=${SSO_USER3:-carol} pw3=${SSO_PASSWORD3:-$(rand_hex 8)} totp3
  totp3=$(head -c 20 /dev/urandom | base32)
  local secret admin_pw
  secret=$(rand_hex 16)
  admin_pw=$(rand_hex 12)

  # The database: glewlwyd's own schema and defaults (admin/password, changed below).
  rm -f "$dir/glewlwyd.db"
  zcat /usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz | sqlite3 "$dir/glewlwyd.db"
  openssl genrsa -out "$dir/oidc-key.pem" 2048 2>/dev/null
  openssl rsa -in "$dir/oidc-key.pem" -pubout -out "$dir/oidc-pub.pem" 2>/dev/null
  # Its login pages, with their settings file.
  rm -rf "$dir/webapp"
  cp -rL /usr/share/glewlwyd/webapp "$dir/webapp" # its scripts are links into /usr/share
  rm -rf "$dir/webapp/config.json"
  cp /etc/glewlwyd/config-2.7.json/config.json "$dir/webapp/config.json"
  sed -e "s|^port=.*|port=$idp_port|" \
    -e "s|^external_url=.*|external_url=\"$IDP\"|" \
    -e 's|^log_mode=.*|log_mode="console"|' -e '/^log_file=/d' \
    -e "s|^# static_files_path=.*|static_files_path=\"$dir/webapp/\"|" \
    -e "s|^@include \"/etc/glewlwyd/glewlwyd-db.conf\"|database = { type = \"sqlite3\" path = \"$dir/glewlwyd.db\" };|" \
    /etc/glewlwyd/glewlwyd.conf >"$dir/glewlwyd.conf"
  setsid glewlwyd --config-file="$dir/glewlwyd.conf" >"$dir/glewlwyd.log" 2>&1 </dev/null &
  echo $! >"$dir/glewlwyd.pid"
  wait_http "$IDP/config" glewlwyd

  local jar=$dir/admin.cookies
  rm -f "$jar"
  api POST /auth/ '{"username":"admin","password":"password"}' "$jar"
  api PUT /user/admin "{\"name\":\"The Administrator\",\"enabled\":true,\"scope\":[\"g_admin\",\"g_profile\"],\"password\":\"$admin_pw\"}" "$jar"
  api POST /mod/plugin/ "$(python3 - "$dir" "$issuer" <<'EOF'
import json, sys
d, iss = sys.argv[1], sys.argv[2]
print(json.dumps({"module": "oidc", "name": "oidc", "display_name": "OpenID Connect", "enabled": True, "parameters": {
    "iss": iss, "jwt-type": "rsa", "jwt-key-size": "256",
    "key": open(d + "/oidc-key.pem").read(), "cert": open(d + "/oidc-pub.pem").read(),
    "access-token-duration": 3600, "refresh-token-duration": 1209600, "code-duration": 600, "refresh-token-rolling": True,
    "allow-non-oidc": False, "auth-type-code-enabled": True, "auth-type-token-enabled": False, "auth-type-id-token-enabled": True,
    "auth-type-none-enabled": False, "auth-type-password-enabled": False, "auth-type-client-enabled": False,
    "auth-type-refresh-enabled": True, "scope": [], "additional-parameters": [], "claims": [], "jwks-show": True,
    "secret-type": "public", "name-claim": "mandatory", "email-claim": "mandatory", "scope-claim": "no",
    "allowed-scope": ["openid", "otp-login"], "address-claim": {"type": "no"}, "pkce-allowed": True,
    "session-management-allowed": False, "request-parameter-allow": False, "encrypt-out-token-allow": False}}))
EOF
)" "$jar"
  # A login for the openid scope is a password login.
  api PUT /scope/openid '{"display_name":"Open ID","description":"Open ID Connect scope","password_required":true,"password_max_age":0,"scheme":{}}' "$jar"
  # A second factor at the IdP: glewlwyd's OTP scheme (TOTP, 6 digits, 30 s),
  # and a scope whose login needs it besides the password. glewlwyd puts
  # the scheme module of every factor of the login in the ID token's amr:
  # "password" for the password, "otp" for this one.
  api POST /mod/scheme/ '{"module":"otp","name":"authenticator","display_name":"Authenticator app","expiration":600,"max_use":0,"allow_user_register":false,"parameters":{"otp-length":6,"issuer":"glewlwyd","secret-minimum-size":16,"hotp-allow":false,"totp-allow":true,"totp-window":30,"totp-start-offset":0}}' "$jar"
  api POST /scope/ '{"name":"otp-login","display_name":"Login with a one-time code","description":"The password and a code of an authenticator app","password_required":true,"password_max_age":0,"scheme":{"otp":[{"scheme_type":"otp","scheme_name":"authenticator"}]}}' "$jar"
  local client="{\"client_id\":\"mfa-demo\",\"name\":\"mfa-operator demo\",\"confidential\":true,\"client_secret\":\"$secret\",\"redirect_uri\":[\"$app_url/oauth2/callback\"],\"authorization_type\":[\"code\",\"refresh_token\"],\"scope\":[\"openid\"],\"token_endpoint_auth_method\":[\"client_secret_basic\",\"client_secret_post\"],\"enabled\":true}"
  api POST /client/ "$client" "$jar"
  api PUT /client/mfa-demo/password "{\"password\":\"$secret\"}" "$jar"
  local u pw scopes scopes_json ujar
  for u in "$user1:$pw1:openid" "$user2:$pw2:openid" "$user3:$pw3:openid otp-login"; do
    scopes=${u##*:} u=${u%:*}
    pw=${u#*:} u=${u%%:*}
    # shellcheck disable=SC2086 # one word per scope
    scopes_json=$(printf '"%s",' $scopes)
    api POST /user/ "{\"username\":\"$u\",\"name\":\"$u\",\"email\":\"$u@example.com\",\"password\":\"$pw\",\"scope\":[${scopes_json%,}],\"enabled\":true}" "$jar"
    # Consent given once, as a user would on the first login.
    ujar=$dir/$u.cookies
    rm -f "$ujar"
    api POST /auth/ "{\"username\":\"$u\",\"password\":\"$pw\"}" "$ujar"
    api PUT /auth/grant/mfa-demo "{\"scope\":\"$scopes\"}" "$ujar"
    rm -f "$ujar"
  done
  # The third user's authenticator app, registered by the administrator.
  api POST "/delegate/$user3/profile/scheme/register/" "{\"username\":\"$user3\",\"scheme_type\":\"otp\",\"scheme_name\":\"authenticator\",\"value\":{\"type\":\"TOTP\",\"secret\":\"$totp3\",\"time_step_size\":30}}" "$jar"
  rm -f "$jar"

  local host=${app_url#*://}
  # It asks for otp-login too: glewlwyd grants it to the users who have it,
  # and asks them for their code; the others sign in with the password.
  setsid "$O2P" --provider=oidc --oidc-issuer-url="$issuer" --client-id=mfa-demo --client-secret="$secret" \
    --redirect-url="$app_url/oauth2/callback" --http-address="127.0.0.1:$proxy_port" \
    --cookie-secret="$(rand_hex 16)" --cookie-secure=false --cookie-expire="${SSO_COOKIE_EXPIRE:-8h}" \
    --email-domain="*" --scope="openid otp-login" --insecure-oidc-allow-unverified-email=true --insecure-oidc-skip-nonce=false --code-challenge-method=S256 \
    --set-xauthrequest=true --set-authorization-header=true --reverse-proxy=true \
    --trusted-proxy-ip=127.0.0.1/32 --upstream=static://202 --whitelist-domain="$host" --skip-provider-button=true \
    >"$dir/oauth2-proxy.log" 2>&1 </dev/null &
  echo $! >"$dir/oauth2-proxy.pid"
  wait_http "http://127.0.0.1:$proxy_port/ping" oauth2-proxy

  cat >"$dir/sso.env" <<EOF
SSO_ISSUER='$issuer'
SSO_JWKS_URL='$issuer/jwks'
SSO_CLIENT_ID='mfa-demo'
SSO_AUTH_URL='http://127.0.0.1:$proxy_port/oauth2/auth'
SSO_PROXY_URL='http://127.0.0.1:$proxy_port'
SSO_SIGNIN_URL='$app_url/oauth2/start'
SSO_USER='$user1'
SSO_PASSWORD='$pw1'
SSO_USER2='$user2'
SSO_PASSWORD2='$pw2'
SSO_USER3='$user3'
SSO_PASSWORD3='$pw3'
SSO_TOTP_SECRET3='$totp3'
SSO_ADMIN_PASSWORD='$admin_pw'
EOF
}

# sso_nginx DIR PORT HOST APP_PORT WEBHOOK_PORT POLICY: renders
# DIR/nginx.conf from hack/sso/nginx.conf.tmpl (oauth2-proxy's port from
# SSO_PROXY_PORT).
sso_nginx() {
  local dir=$1
  mkdir -p "$dir/tmp"
  local user_directive=""
  # As root the workers would otherwise switch to "nobody", which cannot
  # read the state directory.
  if [ "$(id -u)" -eq 0 ]; then user_directive="user root root;"; fi
  sed -e "s|@USER_DIRECTIVE@|$user_directive|" -e "s|@DIR@|$dir|g" -e "s|@PORT@|$2|g" -e "s|@HOST@|$3|g" -e "s|@APP_PORT@|$4|g" \
    -e "s|@WEBHOOK_PORT@|$5|g" -e "s|@POLICY@|$6|g" -e "s|@PROXY_PORT@|${SSO_PROXY_PORT:-18592}|g" \
    "$root/hack/sso/nginx.conf.tmpl" >"$dir/nginx.conf"
}

sso_down() {
  local dir=$1 name pid
  for name in oauth2-proxy glewlwyd; do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
}

case ${1:-} in
  up) sso_up "${2:?hack/sso.sh up DIR}" ;;
  down) sso_down "${2:?hack/sso.sh down DIR}" ;;
  oauth2-proxy) sso_oauth2_proxy ;;
  nginx) shift; sso_nginx "$@" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
