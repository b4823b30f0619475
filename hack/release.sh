#!/usr/bin/env bash
# make release VERSION=v1.2.3: writes the release into DIST (default dist/):
#
#   install.yaml                     everything config/default holds, the image pinned by digest
#   crds.yaml                        the CRDs alone
#   mfa-operator-VERSION.oci.tar     the image (linux/amd64, linux/arm64) as an OCI image layout
#   mfa-operator-VERSION.spdx.json   SPDX SBOM of the binary's Go modules
#   mfa-operator-X.Y.Z.tgz           the Helm chart, its image pinned by digest
#   checksums.txt                    SHA-256 of each file (sha256sum -c checksums.txt)
#
# No container engine: the binaries are cross-compiled with the flags of
# make build (LDFLAGS, passed in by make) and the image is assembled by
# hack/ociimage. The environment: VERSION, DIST, LDFLAGS, IMAGE_REPO,
# SOURCE_URL, REVISION, KUBECTL, HELM.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

: "${VERSION:?VERSION=vX.Y.Z is required}"
: "${LDFLAGS:?LDFLAGS is set by make release}"
: "${REVISION:?REVISION is set by make release}"
: "${KUBECTL:?KUBECTL is set by make release}"
: "${HELM:?HELM is set by make release}"
if ! [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "VERSION=$VERSION is not a release version: vMAJOR.MINOR.PATCH[-PRERELEASE]" >&2
  exit 2
fi
DIST=${DIST:-dist}
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/mfa-operator/mfa-operator}
SOURCE_URL=${SOURCE_URL:-https://github.com/mfa-operator/mfa-operator}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64}
# Every timestamp of the image is the commit's: the same commit gives the
# same digest.
created=$(git log -1 --format=%ct 2>/dev/null || echo 0)

mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
# Only this release's files: checksums.txt lists the whole folder.
rm -f "$DIST"/install.yaml "$DIST"/crds.yaml "$DIST"/mfa-operator-* "$DIST"/checksums.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

image_args=()
for platform in $PLATFORMS; do
  os=${platform%/*} arch=${platform#*/}
  out="$work/$os-$arch/mfa-operator"
  echo "building $platform" >&2
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$out" .
  image_args+=(-binary "$platform=$out")
done

tarball="mfa-operator-$VERSION.oci.tar"
digest=$(go run ./hack/ociimage -out "$DIST/$tarball" -sbom "$DIST/mfa-operator-$VERSION.spdx.json" \
  "${image_args[@]}" -ca-certificates "${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}" \
  -version "$VERSION" -revision "$REVISION" -source "$SOURCE_URL" -created "$created")
image="$IMAGE_REPO:$VERSION@$digest"

# The manifests: the image of the operator and of the challenge server it
# runs (MFA_WEBHOOK_IMAGE) are the one just built.
header="# mfa-operator $VERSION ($SOURCE_URL, revision $REVISION)"
{
  echo "$header"
  echo "# kubectl apply -f install.yaml; then set MFA_PUBLIC_URL (README \"Install\")."
  "$KUBECTL" kustomize config/default | sed "s|mfa-operator:latest|$image|g"
} >"$DIST/install.yaml"
{
  echo "$header"
  echo "# The CRDs alone: kubectl apply --server-side -f crds.yaml"
  "$KUBECTL" kustomize config/crd
} >"$DIST/crds.yaml"
if grep -q 'mfa-operator:latest' "$DIST/install.yaml"; then
  echo "install.yaml still names mfa-operator:latest" >&2
  exit 1
fi

# The chart, its version the release's and its image pinned as well.
chart="$work/chart/mfa-operator"
mkdir -p "$work/chart"
cp -r charts/mfa-operator "$chart"
sed -i "s|^  digest: \"\"|  digest: \"$digest\"|; s|^  repository: .*|  repository: $IMAGE_REPO|" "$chart/values.yaml"
grep -q "digest: \"$digest\"" "$chart/values.yaml" || { echo "could not pin the chart's image digest" >&2; exit 1; }
"$HELM" lint --strict "$chart" >/dev/null
"$HELM" package "$chart" --version "${VERSION#v}" --app-version "$VERSION" -d "$DIST" >/dev/null

(cd "$DIST" && rm -f checksums.txt && sha256sum -- * >"$work/checksums.txt" && mv "$work/checksums.txt" checksums.txt)
echo "$image"
