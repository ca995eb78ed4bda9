//go:build tools

// Package tools pins OpenTofu, built by scripts/build-tofu.sh for the
// Terraform end-to-end test.
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
