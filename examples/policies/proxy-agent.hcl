# proxy-agent.hcl: an agent (an AI tool, a job) that may call one
# customer's GitHub API through the proxy, and nothing else: GET only, only
# under the integration's /v1/ paths, never the token itself.
#
# The proxy path is connections/<integration>/<customer>/proxy/<provider
# path>, so this policy's glob is the agent's whole reach. The capability is
# the HTTP method: read is GET, update POST or PUT, patch PATCH, delete
# DELETE. The integration's own proxy_paths and proxy_methods bound every
# policy: a path or method outside them is refused (403) whatever a policy
# grants.
#
# Left out on purpose:
#   connections/pxgh/cust-a        the token itself
#   connections/pxgh/cust-a/raw    the refresh token
#   .../proxy/* with update        writes at the provider

path "connect/connections/pxgh/cust-a/proxy/v1/*" {
  capabilities = ["read"]
}
