# Vault Agent (the same vault binary: `vault agent -config=agent.hcl`) keeps
# a connection's access token in files for an application that cannot talk
# to Vault itself. Set VAULT_ADDR for the agent. The role's policy needs only
# read on the connection (see examples/policies/application.hcl).
#
# The plugin refreshes the token before it expires (on read and in the
# background); the agent re-reads it every static_secret_render_interval and
# rewrites the files when it changed. Keep the interval well under
# config's refresh_margin (15 minutes by default), so that the files never
# hold a token past its expiry.

auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path                   = "/etc/vault-agent/role-id"
      secret_id_file_path                 = "/etc/vault-agent/secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
}

template_config {
  static_secret_render_interval = "1m"
  exit_on_retry_failure         = true
}

# The bare token, for tools that take one.
template {
  destination = "/run/app/github-token"
  perms       = "0600"
  contents    = <<-EOT
    {{- with secret "connect/connections/github/acme" }}{{ .Data.access_token }}{{ end -}}
  EOT
}

# A ready-made header line, for tools that take a header file.
template {
  destination = "/run/app/github-auth-header"
  perms       = "0600"
  contents    = <<-EOT
    {{- with secret "connect/connections/github/acme" }}Authorization: {{ .Data.token_type }} {{ .Data.access_token }}{{ end -}}
  EOT
}
