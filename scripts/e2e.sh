#!/usr/bin/env bash
# Runs only the end-to-end tests (package e2e) against a real Vault: builds
# Vault and the plugin if needed, makes sure Chromium is there, then lets
# the tests start the server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-vault.sh
scripts/build-plugin.sh
scripts/install-chromium.sh >/dev/null
CONNECT_E2E=1 CONNECT_BROWSER=1 VAULT_BIN="$PWD/bin/vault" PLUGIN_DIR="$PWD/bin/plugins" go test -count=1 -v ./e2e/ "$@"
