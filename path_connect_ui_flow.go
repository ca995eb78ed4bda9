// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The connect page's writes: a posted form is a connection write through
// writeConnection, an OAuth button an authorization through the authorize
// flow, each with the session's metadata and tags; and the callback's
// part in an authorization a session started.

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
	c, _, err := b.writeConnection(ctx, s, stored, in, sess.ConnectionID, d, sess.Reconnect)
	return c, err
}

// checkReconnect says whether the session may write the connection as it
// is: a reconnect replaces one that exists, any other session creates one.
func checkReconnect(sess *sessionEntry, existing *connectionEntry, integration string) error {
	switch {
	case sess.Reconnect && existing == nil:
		return badInput(fmt.Errorf("there is no %s connection to reconnect; ask for a new link", integration))
	case !sess.Reconnect && existing != nil:
		return badInput(fmt.Errorf("this account is connected to %s already; ask for a reconnect link to replace its credentials", integration))
	}
	return nil
}

// authorizeThroughPage starts the OAuth authorization of the session's
// connection with the config the form gives, as authorize does, and returns
// the provider's authorization URL.
func (b *backend) authorizeThroughPage(ctx context.Context, s logical.Storage, sess *sessionEntry, secretHash, integration string, f pageForm, data map[string]any) (string, error) {
	cfg, err := b.config(ctx, s)
	if err != nil {
		return "", err
	}
	if cfg.RedirectURL == "" {
		return "", badInput(errors.New("this Vault is not set up for OAuth (config's redirect_url)"))
	}
	stored, in, err := integrationForWrites(ctx, s, integration)
	if err != nil {
		return "", err
	}
	existing, err := b.store.Get(ctx, s, integration, sess.ConnectionID)
	if err != nil {
		return "", err
	}
	if err := checkReconnect(sess, existing, integration); err != nil {
		return "", err
	}
	st := &oauthStateEntry{
		Integration:          in.Name,
		ConnectionID:         sess.ConnectionID,
		RedirectURL:          in.RedirectURI(cfg.RedirectURL),
		Reauthorization:      existing != nil,
		IntegrationCreatedAt: stored.CreatedAt,
		ExpiresAt:            b.now().Add(cfg.StateTTL),
		SessionHash:          secretHash,
	}
	if len(f.Config) > 0 {
		st.ConnectionConfig, st.ReplaceConnectionConfig = f.postedConfig(data), true
	}
	if !sess.Reconnect {
		st.Metadata, st.ReplaceMetadata = nonNilObject(sess.Metadata), true
		st.Tags, st.ReplaceTags = sess.Tags, true
	}
	return b.authorizer.authorize(ctx, s, in, existing, st)
}

// checkAuthorizingSession refuses the callback of an authorization started
// by a connect session that has since been revoked, has expired or has
// connected something else: the session's link no longer allows it.
func (b *backend) checkAuthorizingSession(ctx context.Context, s logical.Storage, st *oauthStateEntry) *callbackFailure {
	if st.SessionHash == "" {
		return nil
	}
	sess, err := b.sessions.ByHash(ctx, s, st.SessionHash)
	switch {
	case err != nil:
		b.Logger().Error("reading the connect session of an authorization", "error", err)
		return &callbackFailure{http.StatusInternalServerError, "Vault could not read the connect session."}
	case sess == nil:
		return &callbackFailure{http.StatusBadRequest, "The link this sign-in started from was revoked. Nothing was stored. Ask the application for a new link."}
	case !b.now().Before(sess.ExpiresAt):
		return &callbackFailure{http.StatusBadRequest, "The link this sign-in started from has expired. Nothing was stored. Ask the application for a new link."}
	case sess.ConnectedIntegration != "":
		return &callbackFailure{http.StatusConflict, "The link this sign-in started from has connected " + sess.ConnectedIntegration + " already. Nothing was stored."}
	}
	return nil
}

// finishPageAuthorization marks the session of a completed authorization
// connected and shows the page's success, with its link back.
func (b *backend) finishPageAuthorization(ctx context.Context, s logical.Storage, st *oauthStateEntry) *logical.Response {
	defer b.sessions.Lock(st.SessionHash)()
	sess, err := b.sessions.ByHash(ctx, s, st.SessionHash)
	if err == nil && sess != nil {
		err = b.sessions.MarkConnected(ctx, s, st.SessionHash, sess, st.Integration)
	}
	if err != nil {
		b.Logger().Warn("marking a connect session used", "error", err)
	}
	if sess == nil {
		// Revoked since the callback checked it: the connection is stored
		// all the same, and the page says so without a link back.
		sess = &sessionEntry{}
	}
	sess.ConnectedIntegration, sess.ConnectionID = st.Integration, st.ConnectionID
	return connectedPage(http.StatusOK, sess, st.Integration+" is connected. Its credentials are stored in Vault.")
}
