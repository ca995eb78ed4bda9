#!/usr/bin/env bash
# Builds the plugin into bin/plugins, the directory the dev server and the
# end-to-end tests give Vault as -dev-plugin-dir. The binary reports the
# version VERSION (default v0.0.0-dev+<commit>, with .dirty when the tree has
# uncommitted changes or untracked files) to Vault as its running version.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin/plugins
if [ -z "${VERSION:-}" ]; then
  commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    commit="$commit.dirty"
  fi
  VERSION="v0.0.0-dev+$commit"
fi
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-X github.com/connect-vault/vault-plugin-secrets-connect.version=$VERSION" \
  -o bin/plugins/vault-plugin-secrets-connect ./cmd/vault-plugin-secrets-connect
