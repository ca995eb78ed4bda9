// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/connectpage"
)

// The connect page's connection write: a posted form is a connection write
// through the connectionWriter, with the session's metadata and tags, as
// any connection write (the pagePoster runs it under the session's lock).

// connectThroughPage writes the connection a posted form describes, through
// the connectionWriter as every connection write. A new connection is
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
	c, _, err := b.writer.write(ctx, s, stored, in, sess.ConnectionID, f.connectionInputFrom(in.AuthMode, data, sess))
	return c, err
}

// pageForm is an integration's form on the page (internal/connectpage),
// with what the plugin makes of a posted one: a connection write.
type pageForm struct{ connectpage.Form }

// connectionInputFrom turns a posted form into the connection write it
// asks for: the credentials and config the form gives, the session's
// metadata and tags when it creates the connection; a reconnect merges
// the posted config over the connection's (the form shows only the
// schema's keys, blank), a session without reconnect only creates.
func (f pageForm) connectionInputFrom(mode catalog.AuthMode, data map[string]any, sess *sessionEntry) connectionInput {
	input := connectionInput{Given: map[string]bool{}, CreateOnly: !sess.Reconnect}
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
			input.giveString(in.WriteField, v)
		}
	}
	if mode == catalog.Custom {
		input.give("credentials")
		input.Credentials = custom
	}
	if len(f.Config) > 0 {
		input.give("connection_config")
		input.ConnectionConfig = f.PostedConfig(data)
		input.MergeConnectionConfig = sess.Reconnect
	}
	if !sess.Reconnect {
		if sess.Metadata != nil {
			input.give("metadata")
			input.Metadata = sess.Metadata
		}
		if len(sess.Tags) > 0 {
			input.give("tags")
			input.Tags = sess.Tags
		}
	}
	return input
}
