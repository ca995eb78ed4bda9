variable "plugin_sha256" {
  type        = string
  description = "SHA-256 of the plugin binary in Vault's plugin directory."
}

variable "plugin_version" {
  type        = string
  description = "The plugin's version with a v, e.g. v0.2.0: the release's, which the binary reports."
}

variable "plugin_command" {
  type        = string
  default     = "vault-plugin-secrets-connect"
  description = "The plugin binary's file name in Vault's plugin directory."
}

variable "plugin_name" {
  type        = string
  default     = "connect"
  description = "The name the plugin is registered under."
}

variable "mount_path" {
  type        = string
  default     = "connect"
  description = "Where the engine is mounted."
}

variable "redirect_url" {
  type        = string
  default     = "https://vault.example.com/v1/connect/oauth/callback"
  description = "External address of the mount's oauth/callback, registered with each OAuth provider."
}

variable "allowed_return_urls" {
  type        = list(string)
  default     = ["https://app.example.com/integrations/done"]
  description = "Where the browser may be sent after an authorization."
}

variable "github_client_id" {
  type        = string
  default     = "Iv1.example"
  description = "The GitHub OAuth app's client id."
}

variable "github_client_secret" {
  type        = string
  default     = "example-client-secret"
  sensitive   = true
  description = "The GitHub OAuth app's client secret."
}

variable "acme_stripe_api_key" {
  type        = string
  default     = "sk_test_example"
  sensitive   = true
  description = "Customer acme's Stripe API key."
}
