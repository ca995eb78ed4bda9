# customer.hcl: one customer's own connections, in every integration.
#
# The connection id is the customer's id, reused across integrations, and the
# customer's identity entity carries it as metadata "customer". One policy
# therefore serves every customer: Vault fills the template per token.
#
# Left out on purpose:
#   .../raw          refresh tokens and raw token responses
#   .../config       connection config fills provider URLs; keep it the
#                    operator's (or the application's) to write
#   integrations/*   client secrets' owners, endpoints
#   providers/*      where credentials are sent (privileged)
#   import/*         writes any connection of an integration, whatever its id
#
# A customer may start the OAuth authorization of its own connections and
# complete it (config's oauth_completion "application"): complete needs the
# one-time connect_completion, which only the browser that came back to the
# application holds, and the browser_binding given to authorize, so a
# customer that sends its authorization URL to someone else cannot store
# that person's account in its connection (docs/security.md).

path "connect/connections/+/{{identity.entity.metadata.customer}}" {
  capabilities = ["read"]
}

path "connect/connections/+/{{identity.entity.metadata.customer}}/metadata" {
  capabilities = ["read", "update", "patch"]
}

path "connect/connections/+/{{identity.entity.metadata.customer}}/authorize" {
  capabilities = ["update"]
}

path "connect/connections/+/{{identity.entity.metadata.customer}}/complete" {
  capabilities = ["update"]
}
