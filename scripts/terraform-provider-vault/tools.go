//go:build tools

// Package tools pins the Terraform Vault provider, built by
// scripts/build-tofu.sh for the Terraform end-to-end test.
package tools

import _ "github.com/hashicorp/terraform-provider-vault"
