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
# complete it (config's oauth_completion "application"). Risk: a customer
# that calls authorize itself chooses its own browser_binding, so for it the
# one-time connect_completion is the only secret. If it sends its
# authorization URL to someone else and obtains the completion of their
# consent (it is in the Location header Vault's audit log keeps in plain
# text, the application's access logs and that person's address bar), it
# can store that person's account in its connection. The application at
# return_url narrows this to the moment before the browser arrives there,
# by spending at once a completion that is not its user's (docs/oauth.md);
# where customers hold Vault tokens, prefer to leave complete (and
# authorize) to the application and drop those paths below
# (docs/security.md).

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
