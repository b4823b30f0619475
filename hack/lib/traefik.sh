# shellcheck shell=bash
# Traefik as the demo's front door (FRONT_DOOR=traefik); sourced by
# hack/demo.sh, whose settings it uses. Traefik runs with one entry point,
# web, where nginx would listen, and its file provider reads
# $STATE/traefik/dynamic.yaml, rendered from hack/traefik/dynamic.yaml.tmpl.

# traefik_binary prints the Traefik that hack/build-traefik.sh builds (make
# traefik), building it the first time.
traefik_binary() {
  "$root/hack/build-traefik.sh"
}

render_traefik() {
  local forward_auth=${DEMO_FORWARD_AUTH_URL:-http://127.0.0.1:$DEMO_WEBHOOK_PORT/forward-auth/$POLICY_NS/$POLICY_NAME}
  local headers=${DEMO_AUTH_RESPONSE_HEADERS:-X-MFA-User,X-MFA-Multifactor,X-MFA-Assertion}
  DEMO_FORWARD_AUTH_URL=$forward_auth
  headers=$(printf '%s' "$headers" | tr -d '[:space:]' | sed 's/,/, /g')
  mkdir -p "$STATE/traefik"
  sed -e "s|@STATE@|$STATE|g" \
    -e "s|@HOST@|$DEMO_HOST|g" \
    -e "s|@APP_PORT@|$DEMO_APP_PORT|g" \
    -e "s|@WEBHOOK_PORT@|$DEMO_WEBHOOK_PORT|g" \
    -e "s|@FORWARD_AUTH_URL@|$forward_auth|g" \
    -e "s|@RESPONSE_HEADERS@|$headers|g" \
    "$root/hack/traefik/dynamic.yaml.tmpl" >"$STATE/traefik/dynamic.yaml.tmp"
  mv "$STATE/traefik/dynamic.yaml.tmp" "$STATE/traefik/dynamic.yaml"
}

start_traefik() {
  local bin
  bin=$(traefik_binary)
  render_traefik
  start_proc traefik "$bin" \
    "--entryPoints.web.address=127.0.0.1:$DEMO_PORT" \
    "--providers.file.filename=$STATE/traefik/dynamic.yaml" \
    --global.checkNewVersion=false \
    --global.sendAnonymousUsage=false \
    --log.level=INFO \
    --accessLog=true
  # The JWKS answers once the file provider's routers are in force.
  wait_for traefik "Traefik on $DEMO_URL" 30 http_ok "$DEMO_URL/.well-known/jwks.json" \
    --resolve "$DEMO_HOST:$DEMO_PORT:127.0.0.1"
}
