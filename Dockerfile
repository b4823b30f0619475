# One image, two modes, always named: `mfa-operator controller` (the CMD
# below; config/manager passes it too) and `mfa-operator webhook` (the
# challenge server the controller deploys with that argument).
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
# The version stamp; make docker-build passes the LDFLAGS of make build and
# make release (version, revision), so the three build the same binary.
ARG VERSION=devel
ARG REVISION=
ARG LDFLAGS="-s -w -X github.com/mfa-operator/mfa-operator/internal/version.Version=${VERSION} -X github.com/mfa-operator/mfa-operator/internal/version.Revision=${REVISION}"

WORKDIR /workspace
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
# Static binary: the runtime image has no libc.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="${LDFLAGS}" -o mfa-operator .

# distroless static: no shell, no package manager, runs as nonroot.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/mfa-operator /mfa-operator
USER 65532:65532
ENTRYPOINT ["/mfa-operator"]
CMD ["controller"]
