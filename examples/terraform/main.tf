# A root module that installs the connect secrets engine and configures it:
# the plugin registered and mounted, the mount's config, an OAuth
# integration (GitHub, from the built-in catalog), an API-key integration,
# one API-key connection, and a connection read back as a data source.
#
# The Vault provider reads VAULT_ADDR and VAULT_TOKEN as usual:
#
#   export VAULT_ADDR=https://vault.example.com VAULT_TOKEN=...
#   tofu apply -var plugin_version=v0.2.0 \
#     -var plugin_sha256=$(sha256sum vault-plugin-secrets-connect | cut -d' ' -f1)

terraform {
  required_providers {
    vault = {
      source = "hashicorp/vault"
    }
  }
}

provider "vault" {}

# Registered with its version (Vault refuses a version other than the one
# the binary reports) ...
resource "vault_plugin" "connect" {
  type    = "secret"
  name    = var.plugin_name
  command = var.plugin_command
  version = var.plugin_version
  sha256  = var.plugin_sha256
}

# ... and the mount pinned to it: an upgrade is a new version here, then
# `vault plugin reload -type=secret -plugin=<name>` (docs/upgrading.md).
resource "vault_mount" "connect" {
  path           = var.mount_path
  type           = vault_plugin.connect.name
  plugin_version = vault_plugin.connect.version
  description    = "Third-party API credentials: integrations and connections"

  # The connect page and the OAuth callback read the browser's Origin and
  # Cookie and answer with Location and Set-Cookie; Vault passes them only
  # where the mount allows it (docs/deployment.md).
  passthrough_request_headers = ["Cookie", "Origin"]
  allowed_response_headers    = ["Set-Cookie", "Location"]
}

# The configuration always exists; deleting it is not a thing.
resource "vault_generic_endpoint" "config" {
  path                 = "${vault_mount.connect.path}/config"
  disable_delete       = true
  ignore_absent_fields = true
  data_json = jsonencode({
    redirect_url        = var.redirect_url
    refresh_margin      = 900
    allowed_return_urls = var.allowed_return_urls
  })
}

# An OAuth integration. client_secret is write-only: reads never return it,
# and ignore_absent_fields keeps that from showing as a diff on every plan.
resource "vault_generic_endpoint" "github" {
  path                 = "${vault_mount.connect.path}/integrations/github"
  ignore_absent_fields = true
  data_json = jsonencode({
    provider      = "github"
    client_id     = var.github_client_id
    client_secret = var.github_client_secret
    scopes        = ["repo", "read:user"]
  })
}

resource "vault_generic_endpoint" "stripe" {
  path                 = "${vault_mount.connect.path}/integrations/stripe"
  ignore_absent_fields = true
  data_json = jsonencode({
    auth_mode = "API_KEY"
  })
}

# One customer's API key. Connections of OAuth integrations are usually
# created by the customer's consent (authorize), not by Terraform.
resource "vault_generic_endpoint" "stripe_acme" {
  depends_on           = [vault_generic_endpoint.stripe]
  path                 = "${vault_mount.connect.path}/connections/stripe/acme"
  ignore_absent_fields = true
  data_json = jsonencode({
    api_key  = var.acme_stripe_api_key
    metadata = { plan = "enterprise" }
  })
}

data "vault_generic_secret" "stripe_acme" {
  path = vault_generic_endpoint.stripe_acme.path
}
