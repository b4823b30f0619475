#!/usr/bin/env bash
# Installs the Debian packages that tests, the demo and the benchmarks use,
# only when a command is missing.
set -euo pipefail

declare -A pkg_of=(
  [nginx]=nginx
  [oathtool]=oathtool
  [zbarimg]=zbar-tools
  [chromium]=chromium
  [wrk]=wrk
  [valgrind]=valgrind
  [openssl]=openssl
  [curl]=curl
  [caddy]=caddy
)
missing=()
for cmd in "${!pkg_of[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
done
# nginx's set-misc module gives set_escape_uri, which ingress-nginx's
# rendering of auth-signin uses (the demo and the end-to-end tests).
[ -f /usr/lib/nginx/modules/ngx_http_set_misc_module.so ] || missing+=(libnginx-mod-http-set-misc)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged nginx and caddy services are not used; the tests and the demo
# run their own.
if command -v systemctl >/dev/null 2>&1; then
  for unit in nginx caddy; do $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
fi
# Only the packaged daemon (its pid file) is stopped, never another nginx.
if [ -f /run/nginx.pid ]; then $sudo kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
