#!/usr/bin/env bash
# Builds Traefik from its Go module into bin/traefik/<version>/traefik, for the
# end-to-end test and `make demo FRONT_DOOR=traefik`. A binary already there is
# reused, so only the first run on a machine pays for the compile (minutes).
# It prints the binary's path.
#
#   hack/build-traefik.sh           build when missing
#   hack/build-traefik.sh --check   only print the path; fail when not built
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# v3.7 and later need a nested module the Go module proxy does not serve.
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.6.12}

out="$root/bin/traefik/$TRAEFIK_VERSION"
if [ -x "$out/traefik" ]; then
  echo "$out/traefik"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "$out/traefik is not built; run: make traefik" >&2
  exit 1
fi
mkdir -p "$out"

mod="$root/bin/.build/traefik-$TRAEFIK_VERSION"
mkdir -p "$mod"
if ! grep -q "github.com/traefik/traefik/v3 $TRAEFIK_VERSION" "$mod/go.mod" 2>/dev/null; then
  # Traefik's own go.mod replaces three forks; replaces of a dependency do not
  # apply to the module that builds it, so they are repeated here.
  cat >"$mod/go.mod.tmp" <<MOD
module localfrontdoor/traefik

go 1.25

replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
	github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
	github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595
)
MOD
  mv "$mod/go.mod.tmp" "$mod/go.mod"
  (cd "$mod" && GOFLAGS=-mod=mod go get "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
fi

echo "building traefik $TRAEFIK_VERSION (first time only; takes minutes)" >&2
ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION"
(cd "$mod" && GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$out/traefik.tmp" github.com/traefik/traefik/v3/cmd/traefik)
mv "$out/traefik.tmp" "$out/traefik"
echo "$out/traefik"
