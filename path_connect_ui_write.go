// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"

	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/connectpage"
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

// pageForm is an integration's form on the page (internal/connectpage),
// with what the plugin makes of a posted one: the fields of a connection
// write.
type pageForm struct{ connectpage.Form }

// connectionWriteFields turns a posted form into the fields of a
// connection write, as `vault write connections/<i>/<id>` takes them.
func (f pageForm) connectionWriteFields(mode catalog.AuthMode, data map[string]any, sess *sessionEntry) map[string]any {
	raw := map[string]any{}
	custom := map[string]any{}
	for _, in := range f.Credentials {
		v := queryValue(data, in.Name)
		if !in.Secret {
			v = strings.TrimSpace(v)
		}
		if v == "" {
			continue
		}
		if mode == catalog.Custom {
			custom[in.Key] = v
		} else {
			raw[in.WriteField] = v
		}
	}
	if mode == catalog.Custom {
		raw["credentials"] = custom
	}
	if len(f.Config) > 0 {
		raw["connection_config"] = f.PostedConfig(data)
	}
	if !sess.Reconnect {
		if sess.Metadata != nil {
			raw["metadata"] = sess.Metadata
		}
		if len(sess.Tags) > 0 {
			raw["tags"] = sess.Tags
		}
	}
	return raw
}
