# onboarding.hcl: the service that starts a customer's OAuth consent. It may
# ask for an authorization URL for any connection, and nothing else: the
# tokens arrive through the unauthenticated callback and are never shown to
# it.

path "connect/connections/+/+/authorize" {
  capabilities = ["update"]
}
