#!/usr/bin/env bash
# Builds the plugin into bin/plugins, the directory the dev server and the
# end-to-end tests give Vault as -dev-plugin-dir.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin/plugins
CGO_ENABLED=0 go build -o bin/plugins/vault-plugin-secrets-connect ./cmd/vault-plugin-secrets-connect
