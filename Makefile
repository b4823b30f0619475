# mfa-operator

IMG ?= mfa-operator:dev
# What `mfa-operator version`, the build info gauge and the User-Agent say;
# stamped into the binary by make build, make run, make release and make
# docker-build, all with these LDFLAGS (and -trimpath, CGO_ENABLED=0).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
VERSION_PKG := github.com/mfa-operator/mfa-operator/internal/version
LDFLAGS ?= -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION)
# The control plane's version follows client-go in go.mod (v0.X.Y -> v1.X.Y).
K8S_VERSION ?= $(shell awk '$$1 == "k8s.io/client-go" { sub(/^v0\./, "v1.", $$2); print $$2 }' go.mod)
KUBEBUILDER_ASSETS ?= $(CURDIR)/bin/k8s/$(K8S_VERSION)
KUBECTL ?= $(KUBEBUILDER_ASSETS)/kubectl
# Helm, built from its Go module into bin/ by make helm.
HELM_VERSION ?= v3.22.0
HELM ?= $(CURDIR)/bin/helm-$(HELM_VERSION)/helm
# Where make release writes.
DIST ?= dist
CONTROLLER_GEN ?= go tool controller-gen
GO_TEST_FLAGS ?= -count=1 -timeout 30m
# The end-to-end and fault tests (test/e2e, test/faults) start nginx, Caddy,
# Chromium and the product's processes; they build only with this tag, so a
# plain `go test ./...` runs the unit and envtest suites alone.
E2E_TAGS ?= e2e

export KUBEBUILDER_ASSETS

.PHONY: all
all: build ## The default: make build.

##@ Development

# Where make manifests writes; hack/verify.sh runs the same target into a
# scratch folder and compares, so the generator's arguments live only here.
CRD_DIR ?= config/crd/bases
RBAC_DIR ?= config/rbac
# The Helm chart carries the same CRDs.
CHART_CRD_DIR ?= charts/mfa-operator/crds
CHART_RULES ?= charts/mfa-operator/templates/_operator_rules.tpl

.PHONY: manifests
manifests: ## Generate the CRDs and RBAC from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=mfa-operator crd paths="./..." output:crd:artifacts:config=$(CRD_DIR) output:rbac:artifacts:config=$(RBAC_DIR)
	mkdir -p $(CHART_CRD_DIR) && cp $(CRD_DIR)/*.yaml $(CHART_CRD_DIR)/
	RBAC_IN=$(RBAC_DIR)/role.yaml CHART_RULES=$(CHART_RULES) hack/chart-rbac.sh

.PHONY: generate
generate: ## Generate deepcopy functions.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet, without and with the end-to-end build tag.
	go vet ./...
	go vet -tags $(E2E_TAGS) ./...

.PHONY: verify
verify: ## Fail when generated files are stale or code is not gofmt-clean.
	hack/verify.sh

.PHONY: control-plane
control-plane: ## Build kube-apiserver, etcd and kubectl into bin/k8s/ (once).
	hack/build-k8s.sh

.PHONY: traefik
traefik: ## Build Traefik from its Go module into bin/traefik/ (once), for the end-to-end tests and make demo FRONT_DOOR=traefik.
	hack/build-traefik.sh

.PHONY: helm
helm: ## Build helm into bin/helm-$(HELM_VERSION)/ (once).
	HELM_VERSION=$(HELM_VERSION) hack/build-helm.sh >/dev/null

.PHONY: deps
deps: ## Install the system packages tests and the demo use (nginx, oathtool, zbarimg, chromium, wrk, valgrind, glewlwyd) and bin/oauth2-proxy.
	hack/install-deps.sh
	hack/sso.sh oauth2-proxy

# make test fuzzes each target for a number of inputs rather than a time: with
# a time, Go 1.26's fuzzing coordinator can fail a target that found nothing
# ("context deadline exceeded") when the time runs out (see hack/fuzz.sh).
TEST_FUZZ_EXECS ?= 4000x

.PHONY: test
test: verify vet control-plane traefik helm deps ## Run every test (unit, envtest, end-to-end, faults), then a short fuzz pass.
	go test -tags $(E2E_TAGS) $(GO_TEST_FLAGS) ./...
	hack/fuzz.sh $(TEST_FUZZ_EXECS)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 1m).
	hack/fuzz.sh $(or $(FUZZTIME),1m)

.PHONY: bench
bench: control-plane deps ## Print the performance figures (/auth vs an empty handler, memory, startup, controller) and write docs/performance.md.
	hack/bench.sh

##@ Run

.PHONY: build
build: ## Build bin/mfa-operator and the kubectl plugin bin/kubectl-mfa, stamped with VERSION (git describe).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/mfa-operator .
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-mfa ./cmd/kubectl-mfa

.PHONY: run
run: ## Run the controller against the current kubeconfig, e.g. make run ARGS=--public-url=https://auth.example.com
	go run -ldflags "$(LDFLAGS)" . controller $(ARGS)

# The proxy in front of the sample app in make demo: nginx (as ingress-nginx
# renders auth-url) or traefik (its forwardAuth middleware).
FRONT_DOOR ?= nginx

.PHONY: demo
demo: build control-plane deps $(if $(filter traefik,$(FRONT_DOOR)),traefik) ## Run the whole product locally (control plane, operator, challenge server, sample app, FRONT_DOOR=nginx|traefik in front).
	FRONT_DOOR=$(FRONT_DOOR) hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop everything make demo started (its state stays in tmp/demo).
	hack/demo.sh down

.PHONY: e2e
e2e: control-plane traefik deps ## Run the end-to-end tests (each starts its own control plane, challenge server and nginx, Caddy or Traefik).
	go test -tags $(E2E_TAGS) $(GO_TEST_FLAGS) ./test/e2e/...

##@ Deployment

.PHONY: release
release: control-plane helm ## Write the release of VERSION (vX.Y.Z) into DIST: install.yaml, crds.yaml, the image (OCI layout, amd64+arm64), SBOM, chart, checksums.
	VERSION="$(VERSION)" REVISION="$(REVISION)" LDFLAGS="$(LDFLAGS)" DIST="$(DIST)" \
	KUBECTL="$(KUBECTL)" HELM="$(HELM)" hack/release.sh

.PHONY: docker-build
docker-build: ## Build the image with a Docker engine (make release needs none).
	docker build --build-arg LDFLAGS="$(LDFLAGS)" -t $(IMG) .

.PHONY: install
install: ## Install the CRDs into the current cluster.
	kubectl apply -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs from the current cluster.
	kubectl delete -k config/crd

.PHONY: deploy
deploy: ## Deploy the operator with image IMG.
	cd config/manager && kubectl kustomize . >/dev/null && cd ../.. && \
	kubectl kustomize config/default | sed 's|mfa-operator:latest|$(IMG)|g' | kubectl apply -f -

.PHONY: undeploy
undeploy: ## Remove the operator and its namespace: the challenge server, its Secrets and the enrolments.
	kubectl delete -k config/default

# make print-LDFLAGS: a variable's value, as the release tests read it.
print-%:
	@echo '$($*)'

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_.-]+:.*##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
