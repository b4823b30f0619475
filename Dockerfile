# One image, two modes: `mfa-operator controller` (the default) and
# `mfa-operator webhook` (the challenge server the controller deploys).
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
# Static binary: the runtime image has no libc.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o mfa-operator .

# distroless static: no shell, no package manager, runs as nonroot.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/mfa-operator /mfa-operator
USER 65532:65532
ENTRYPOINT ["/mfa-operator"]
CMD ["controller"]
