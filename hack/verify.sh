#!/usr/bin/env bash
# Fails when generated files (CRDs, RBAC, deepcopy) are stale or Go code is
# not gofmt-clean. It runs the Makefile's own `manifests` and `generate`
# targets (one definition of the generators' arguments), the manifests into
# a scratch folder, and compares, so it never rewrites the tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make=("${MAKE:-make}" -s --no-print-directory)

"${make[@]}" manifests CRD_DIR="$tmp/crd" RBAC_DIR="$tmp/rbac" CHART_CRD_DIR="$tmp/chart-crds" CHART_RULES="$tmp/operator_rules.tpl"
mkdir -p "$tmp/api"
cp -r api/. "$tmp/api/"
"${make[@]}" generate
stale=0
for f in $(cd "$tmp/api" && find . -name 'zz_generated*.go'); do
  if ! cmp -s "api/$f" "$tmp/api/$f"; then
    echo "stale: api/$f (run: make generate)" >&2
    cp "$tmp/api/$f" "api/$f" # leave the tree as it was
    stale=1
  fi
done
diff -r "$tmp/crd" config/crd/bases >&2 || { echo "stale: config/crd/bases (run: make manifests)" >&2; stale=1; }
diff -r "$tmp/chart-crds" charts/mfa-operator/crds >&2 || { echo "stale: charts/mfa-operator/crds (run: make manifests)" >&2; stale=1; }
diff "$tmp/rbac/role.yaml" config/rbac/role.yaml >&2 || { echo "stale: config/rbac/role.yaml (run: make manifests)" >&2; stale=1; }
diff "$tmp/operator_rules.tpl" charts/mfa-operator/templates/_operator_rules.tpl >&2 || { echo "stale: charts/mfa-operator/templates/_operator_rules.tpl (run: make manifests)" >&2; stale=1; }
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-clean (run: make fmt):" >&2
  echo "$unformatted" >&2
  stale=1
fi
exit $stale
