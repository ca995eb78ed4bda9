# operator.hcl: manages the engine (configuration, integrations, providers)
# and can list and delete connections, but reads no credential.

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

path "connect/connections/+/" {
  capabilities = ["list"]
}

path "connect/connections/+/+" {
  capabilities = ["delete"]
}
