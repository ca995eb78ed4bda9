// SPDX-License-Identifier: MPL-2.0

// Command vault builds a real Vault server from its Go module so the
// end-to-end tests and `make dev` run against the genuine article, not a mock.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
