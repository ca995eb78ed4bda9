# make dev   builds the plugin and Vault, starts a dev server with the plugin at connect/
# make test  runs every test, the end-to-end ones against a real Vault

VAULT_BIN  := $(CURDIR)/bin/vault
PLUGIN_DIR := $(CURDIR)/bin/plugins
TOFU_BIN   := $(CURDIR)/bin/tofu
TF_PROVIDER_DIR := $(CURDIR)/bin/tf-providers

.PHONY: all build vault tf browser screenshots dev oauth-dev test unit e2e tf-e2e crash ha load reliability fuzz bench bench-scale fmt fmtcheck vet clean

all: build

build:
	scripts/build-plugin.sh

vault:
	scripts/build-vault.sh

# OpenTofu and the Terraform Vault provider, built from their Go modules.
tf:
	scripts/build-tf.sh

# Chromium for the connect page's browser tests: Debian's chromium package,
# installed when missing where apt-get is available and we are root.
browser:
	scripts/install-chromium.sh

dev: vault build oauth-dev
	scripts/dev.sh

# The loopback OAuth provider make dev starts (scripts/oauth-dev).
oauth-dev:
	go build -o bin/oauth-dev ./scripts/oauth-dev

# Unit tests and the end-to-end tests (package e2e, Terraform included) in
# one go test run. CONNECT_E2E=1, CONNECT_TF_E2E=1 and CONNECT_BROWSER=1 make
# a missing Vault, plugin, OpenTofu, provider or Chromium a failure, not a skip.
E2E_ENV = CONNECT_E2E=1 CONNECT_TF_E2E=1 CONNECT_BROWSER=1 CONNECT_CRASH=1 VAULT_BIN=$(VAULT_BIN) PLUGIN_DIR=$(PLUGIN_DIR) TOFU_BIN=$(TOFU_BIN) TF_PROVIDER_DIR=$(TF_PROVIDER_DIR)

test: vault tf browser build vet
	$(E2E_ENV) go test -race -count=1 -timeout 20m ./...
	scripts/fuzz.sh 2s

# The crash tests on integrated storage, longer and bigger than in make test.
crash: vault build
	CRASH_SECONDS=$${CRASH_SECONDS:-120} CRASH_CONNECTIONS=$${CRASH_CONNECTIONS:-2000} CONNECT_LEAK_CHECK=0 \
		$(E2E_ENV) go test -count=1 -timeout 30m -run 'TestCrashesOnRaft' -v ./e2e

# The 3-node integrated-storage cluster: failover, forwarding, rejoin.
ha: vault build
	CONNECT_HA=1 CONNECT_LEAK_CHECK=0 $(E2E_ENV) go test -count=1 -timeout 20m -run 'TestRaftCluster' -v ./e2e

# A bounded load run through a real Vault (loopback only): LOAD_DURATION,
# default 5m; prints RSS and goroutines, p50/p99, and checks the result.
LOAD_DURATION ?= 5m
load: vault build
	go run ./scripts/load -vault $(VAULT_BIN) -plugins $(PLUGIN_DIR) -duration $(LOAD_DURATION)

# docs/reliability.md from a run of the reliability tests and the fuzz targets.
reliability: vault tf build
	CONNECT_HA=1 $(E2E_ENV) go run ./scripts/reliability -o docs/reliability.md

# Every fuzz target for FUZZTIME each (default 1m).
FUZZTIME ?= 1m
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# The connect page's screenshots in docs/connect/, from its browser tests.
screenshots: vault browser build
	CONNECT_DOC_SCREENSHOTS=1 CONNECT_LEAK_CHECK=0 $(E2E_ENV) go test -count=1 -run 'TestConnectPageInBrowser' ./e2e

# The Terraform example applied, planned and destroyed with OpenTofu.
tf-e2e: vault tf build
	$(E2E_ENV) go test -count=1 -run 'TestTerraformExample' -v ./e2e

unit:
	go test -count=1 ./...

e2e:
	scripts/e2e.sh

# The engine's benchmarks with their targets; minutes long, not part of test.
bench:
	scripts/bench.sh

# The scale benchmarks: about ten minutes; writes docs/performance.md.
bench-scale:
	scripts/bench.sh --scale

# fmt rewrites the Go files gofmt would change; fmtcheck only lists them
# and fails, as CI does through vet.
fmt:
	gofmt -w $$(git ls-files '*.go')

fmtcheck:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed (run make fmt):"; gofmt -l $$(git ls-files '*.go'); exit 1; }

vet: fmtcheck
	go vet ./...

clean:
	rm -rf bin/plugins bin/vault-dev.log
