output "mount_path" {
  value = vault_mount.connect.path
}

# The data source's values are secrets to OpenTofu, metadata included.
output "acme_plan" {
  value     = jsondecode(data.vault_generic_secret.stripe_acme.data_json)["metadata"]["plan"]
  sensitive = true
}
