# make dev   builds the plugin and Vault, starts a dev server with the plugin at connect/
# make test  runs every test, the end-to-end ones against a real Vault

VAULT_BIN  := $(CURDIR)/bin/vault
PLUGIN_DIR := $(CURDIR)/bin/plugins

.PHONY: all build vault dev test unit e2e bench fmt vet clean

all: build

build:
	scripts/build-plugin.sh

vault:
	scripts/build-vault.sh

dev: vault build
	scripts/dev.sh

# Unit tests and the end-to-end tests (package e2e) in one go test run.
# CONNECT_E2E=1 makes a missing Vault or plugin a failure, not a skip.
test: vault build vet
	CONNECT_E2E=1 VAULT_BIN=$(VAULT_BIN) PLUGIN_DIR=$(PLUGIN_DIR) go test -race -count=1 -timeout 20m ./...

unit:
	go test -count=1 ./...

e2e:
	scripts/e2e.sh

# The engine's benchmarks with their targets; minutes long, not part of test.
bench:
	scripts/bench.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...

clean:
	rm -rf bin/plugins bin/vault-dev.log
