# operator.hcl: manages the engine (configuration, integrations, providers,
# imports, webhook receivers, connect sessions) and can list and delete
# connections, but reads no credential. Every operator path of the mount is
# here; e2e/policies_test.go proves each grant and each refusal.

path "connect/config" {
  capabilities = ["read", "update"]
}

path "connect/status" {
  capabilities = ["read"]
}

path "connect/integrations/" {
  capabilities = ["list"]
}

path "connect/integrations/*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "connect/providers/" {
  capabilities = ["list"]
}

path "connect/providers/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Bulk import: writes any connection of the integration (an operator's
# path, never a customer's). It answers no credential.
path "connect/import/*" {
  capabilities = ["update"]
}

# Webhook receivers: their settings and delivery figures (never the signing
# secret after the write that created or rotated it), and the dead events.
path "connect/webhooks/" {
  capabilities = ["list"]
}

path "connect/webhooks/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Connect sessions: read one and revoke it by its session_id.
path "connect/sessions/+" {
  capabilities = ["read", "delete"]
}

path "connect/connections/+/" {
  capabilities = ["list"]
}

path "connect/connections/+/+" {
  capabilities = ["delete"]
}
