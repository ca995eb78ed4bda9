// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"
)

// getConnection reads a connection straight from storage, past the store's
// cache, as a test's view of what is really stored.
func getConnection(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, error) {
	c, _, err := readConnectionEntry(ctx, s, connectionKey(integration, id))
	return c, err
}

// putConnection writes a connection straight to storage, as another node or
// an earlier version would have.
func putConnection(ctx context.Context, s logical.Storage, c *connectionEntry) error {
	_, err := writeConnectionEntry(ctx, s, c)
	return err
}

// replaceWith is a store change that stores c whatever was there.
func replaceWith(c *connectionEntry) func(*connectionEntry) (*connectionEntry, error) {
	return func(*connectionEntry) (*connectionEntry, error) { return c.clone(), nil }
}
