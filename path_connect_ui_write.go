// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The connect page's connection write: a posted form is a connection write
// through writeConnection, with the session's metadata and tags, as any
// connection write (the pagePoster runs it under the session's lock).

// connectThroughPage writes the connection a posted form describes, through
// the same writeConnection as every connection write. A new connection is
// refused when one exists (a session without reconnect creates), and a
// reconnect when none does.
func (b *backend) connectThroughPage(ctx context.Context, s logical.Storage, sess *sessionEntry, integration string, f pageForm, data map[string]any) (*connectionEntry, error) {
	stored, in, err := integrationForWrites(ctx, s, integration)
	if err != nil {
		return nil, err
	}
	existing, err := b.store.Get(ctx, s, integration, sess.ConnectionID)
	if err != nil {
		return nil, err
	}
	if err := checkReconnect(sess, existing, integration); err != nil {
		return nil, err
	}
	d := &framework.FieldData{Raw: f.connectionWriteFields(in.AuthMode, data, sess), Schema: connectionFields()}
	posted, hasConfig := d.Raw["connection_config"].(map[string]any)
	if !sess.Reconnect || !hasConfig {
		c, _, err := b.writeConnection(ctx, s, stored, in, sess.ConnectionID, d, sess.Reconnect)
		return c, err
	}
	// A reconnect merges the posted config over the connection's as it is
	// under its lock: the form shows only the schema's keys, blank, and a
	// write's connection_config replaces the whole config.
	write := b.connectionWrite(stored, in, sess.ConnectionID, d)
	c, _, err := b.refresher.write(ctx, s, in, sess.ConnectionID, true, func(existing *connectionEntry) (*connectionEntry, error) {
		if existing != nil {
			d.Raw["connection_config"] = mergedConnectionConfig(existing.ConnectionConfig, posted)
		}
		return write(existing)
	})
	return c, err
}
