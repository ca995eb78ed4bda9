#!/usr/bin/env bash
# Starts a Vault dev server on 127.0.0.1:8200 with the plugin registered as
# "connect" and mounted at connect/, writes a demo integration and
# connection, and runs until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=${VAULT_DEV_ADDR:-127.0.0.1:8200}
export VAULT_ADDR="http://$addr" VAULT_TOKEN=root
# VAULT_BIN, PLUGIN_DIR, OAUTH_DEV_BIN and DEV_LOG_DIR default to bin/; the
# docs test (e2e/docs_test.go) sets them to run the docs' blocks here.
vault=${VAULT_BIN:-$PWD/bin/vault}
plugin_dir=${PLUGIN_DIR:-$PWD/bin/plugins}
log_dir=${DEV_LOG_DIR:-$PWD/bin}
log=$log_dir/vault-dev.log

if curl -fs "$VAULT_ADDR/v1/sys/health" >/dev/null 2>&1; then
  echo "something already answers on $addr; stop it or set VAULT_DEV_ADDR" >&2
  exit 1
fi

# setsid: Vault and the plugin processes it starts form one process group,
# stopped together on exit.
setsid "$vault" server -dev -dev-root-token-id=root -dev-listen-address="$addr" \
  -dev-plugin-dir="$plugin_dir" >"$log" 2>&1 &
server=$!
trap 'kill -TERM -- -$server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  curl -fs "$VAULT_ADDR/v1/sys/health" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done

sha=$(sha256sum "$plugin_dir/vault-plugin-secrets-connect" | cut -d' ' -f1)
"$vault" plugin register -sha256="$sha" -command=vault-plugin-secrets-connect secret connect >/dev/null
"$vault" secrets enable -path=connect connect >/dev/null
# The connect page and the OAuth callback need the browser's Origin and
# Cookie, and answer with Location and Set-Cookie: Vault passes them only
# where the mount allows it.
"$vault" secrets tune -passthrough-request-headers=Cookie -passthrough-request-headers=Origin \
  -allowed-response-headers=Set-Cookie -allowed-response-headers=Location connect/ >/dev/null

# The OAuth callback of this mount, as providers must be told it.
"$vault" write connect/config redirect_url="$VAULT_ADDR/v1/connect/oauth/callback" >/dev/null

# The demo: an API-key integration with one connection.
"$vault" write connect/integrations/stripe-demo auth_mode=API_KEY >/dev/null
"$vault" write connect/connections/stripe-demo/acme api_key=sk_test_demo_123 >/dev/null
"$vault" write connect/connections/stripe-demo/acme/metadata customer="Acme Corp" plan=pro >/dev/null

# --- BEGIN local OAuth provider (issue 29: "Try it locally" in docs/oauth.md) ---
# A loopback OAuth 2.0 provider with a consent page (scripts/oauth-dev) and
# a demo OAUTH2 integration using it, so authorize -> open the URL -> Allow
# -> connected -> refresh works without an account anywhere. Its client
# secret is random per run and reaches Vault on stdin, never in argv.
oauth_addr=${OAUTH_DEV_ADDR:-127.0.0.1:8300}
oauth_log=$log_dir/oauth-dev.log
export OAUTH_DEV_CLIENT_ID=connect-dev
OAUTH_DEV_CLIENT_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export OAUTH_DEV_CLIENT_SECRET
setsid "${OAUTH_DEV_BIN:-$PWD/bin/oauth-dev}" -addr="$oauth_addr" -expires-in=120 \
  -redirect-uri="$VAULT_ADDR/v1/connect/oauth/callback" >"$oauth_log" 2>&1 &
oauth=$!
trap 'kill -TERM -- -$oauth 2>/dev/null; kill -TERM -- -$server 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://$oauth_addr/authorize" && break
  kill -0 $oauth 2>/dev/null || { cat "$oauth_log" >&2; exit 1; }
  sleep 0.1
done
printf %s "$OAUTH_DEV_CLIENT_SECRET" | "$vault" write connect/integrations/oauth-demo auth_mode=OAUTH2 \
  client_id=connect-dev client_secret=- scopes=read \
  auth_url="http://$oauth_addr/authorize" token_url="http://$oauth_addr/token" \
  revocation_url="http://$oauth_addr/revoke" api_base_url="http://$oauth_addr" \
  request_headers=Authorization='Bearer ${accessToken}' >/dev/null
unset OAUTH_DEV_CLIENT_SECRET
# The demo's return_url: where the callback sends the browser back with a
# connect_completion, as it would to an application (see docs/oauth.md).
"$vault" write connect/config allowed_return_urls="http://$oauth_addr/done" >/dev/null
oauth_msg="
Local OAuth provider at http://$oauth_addr (log: $oauth_log), integration oauth-demo:

  vault write -field=authorization_url connect/connections/oauth-demo/me/authorize \\
      return_url=http://$oauth_addr/done browser_binding=my-browser-session-binding
  # open the URL, click Allow; the address bar then holds connect_completion=..., then:
  vault write connect/connections/oauth-demo/me/complete completion=... browser_binding=my-browser-session-binding
  vault read connect/connections/oauth-demo/me
"
# --- END local OAuth provider ---

cat <<MSG

Vault dev server with the connect plugin at $VAULT_ADDR (root token: root).
Server log: $log

  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
  alias vault=$vault

  vault list connect/integrations
  vault read connect/connections/stripe-demo/acme
  vault read -field=api_key connect/connections/stripe-demo/acme
  vault patch connect/connections/stripe-demo/acme/metadata plan=enterprise
  vault path-help connect/connections/stripe-demo/acme
  vault list connect/providers
  vault read connect/providers/github

OAuth callback (register it with your OAuth apps): $VAULT_ADDR/v1/connect/oauth/callback

$oauth_msg
Ctrl-C stops the server.
MSG
wait $server
