//go:build tools

// Package tools pins staticcheck, built by scripts/check.sh for `make check`.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
