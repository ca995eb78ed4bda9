# application.hcl: a backend service that calls one provider's API (here the
# "github" integration) for every customer. It reads access tokens and may
# force a refresh, but never sees refresh tokens.

path "connect/connections/github/" {
  capabilities = ["list"]
}

path "connect/connections/github/*" {
  capabilities = ["read"]
}

path "connect/connections/github/+/refresh" {
  capabilities = ["update"]
}

path "connect/connections/github/+/raw" {
  capabilities = ["deny"]
}
