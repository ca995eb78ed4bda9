# make dev   builds the plugin and Vault, starts a dev server with the plugin at connect/
# make test  runs every test, the end-to-end ones against a real Vault
# make check the fast checks (gofmt, vet, tidy, staticcheck, unit tests) in under two minutes with a warm cache

VAULT_BIN  := $(CURDIR)/bin/vault
PLUGIN_DIR := $(CURDIR)/bin/plugins
TOFU_BIN   := $(CURDIR)/bin/tofu
TF_PROVIDER_DIR := $(CURDIR)/bin/tf-providers

.PHONY: all build vault tf browser screenshots dev oauth-dev test check generate unit e2e tf-e2e crash ha upgrade load reliability fuzz bench bench-scale release reproducible fmt fmtcheck vet clean

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
E2E_ENV = CONNECT_E2E=1 CONNECT_TF_E2E=1 CONNECT_BROWSER=1 CONNECT_CRASH=1 CONNECT_UPGRADE=1 VAULT_BIN=$(VAULT_BIN) PLUGIN_DIR=$(PLUGIN_DIR) TOFU_BIN=$(TOFU_BIN) TF_PROVIDER_DIR=$(TF_PROVIDER_DIR)

test: vault tf browser build vet
	$(E2E_ENV) go test -race -count=1 -timeout 45m ./...
	scripts/fuzz.sh 2s

# The crash tests on integrated storage, longer and bigger than in make test,
# and the one whose WAL records exist at start (file storage, whose files can
# be made to refuse writes).
crash: vault build
	CRASH_SECONDS=$${CRASH_SECONDS:-120} CRASH_CONNECTIONS=$${CRASH_CONNECTIONS:-2000} CRASH_WAL_CONNECTIONS=$${CRASH_WAL_CONNECTIONS:-200} CONNECT_LEAK_CHECK=0 \
		$(E2E_ENV) go test -count=1 -timeout 30m -run 'TestCrashesOnRaft|TestCrashesWithWALRecordsAtStart' -v ./e2e

# The 3-node integrated-storage cluster: failover, forwarding, rejoin.
ha: vault build
	CONNECT_HA=1 CONNECT_LEAK_CHECK=0 $(E2E_ENV) go test -count=1 -timeout 20m -run 'TestRaftCluster' -v ./e2e

# The upgrade from the previous release (scripts/upgrade/from) to this tree
# and back, on integrated storage; builds the previous release once into
# bin/upgrade/.
upgrade: vault build
	$(E2E_ENV) go test -count=1 -timeout 20m -run 'TestUpgrade' -v ./e2e

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

# gofmt, vet, go.mod tidy, staticcheck (pinned in scripts/staticcheck) and
# the unit tests without -race: what to run before every commit.
check:
	scripts/check.sh

# The generated docs (docs/api.md from the path definitions, docs/providers.md
# from the catalog); tests fail when they are stale.
generate:
	go generate ./...

e2e:
	scripts/e2e.sh

# The release: per-platform zips, SHA256SUMS, SBOMs and notes in dist/
# (scripts/release.sh); SNAPSHOT=1 builds one from any tree as
# v0.0.0-dev+<commit>.
release:
	scripts/release.sh

# Two release builds of HEAD for one platform, from two checkouts, the
# second with an empty build cache, compared byte for byte.
reproducible:
	scripts/reproducible.sh

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
	rm -rf bin/plugins bin/vault-dev.log dist
