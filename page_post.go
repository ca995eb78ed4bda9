// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// pagePoster carries out a connect page's post under its session's lock,
// as completeCallback completes a session's authorization under it: the
// session is read again under the lock (a second tab's post waits, then
// finds it connected), the connection is written or its authorization
// started, and the session marked connected, or the failed post counted.
type pagePoster struct {
	sessions   *sessionStore
	authorizer *authorizer
	now        func() time.Time
	logger     func() hclog.Logger
}

// pagePost is one post of the page: the hash of the session's secret and
// the integration it connects (one the session offers); for an OAUTH2
// integration the connection config the form gives (nil when its form has
// no config inputs), else connect, the write of the posted form's
// connection (the handler's connectThroughPage, until the connection
// writer takes a plain connectionInput that the post can carry instead).
type pagePost struct {
	secretHash  string
	integration *integrationEntry
	config      map[string]any
	connect     func(ctx context.Context, s logical.Storage, sess *sessionEntry) error
}

// postOutcome is what a post did. refusal says why the session, read again
// under its lock, cannot be used; else started is where an OAuth post sends
// the browser, failed the customer's error for the form page (spent: it
// used the link up), and neither a stored connection.
type postOutcome struct {
	refusal sessionRefusal
	sess    *sessionEntry
	started *pageAuthorization
	failed  error
	spent   bool
}

// post carries out p. Errors are Vault's; the customer's are the
// outcome's failed.
func (pp *pagePoster) post(ctx context.Context, s logical.Storage, p pagePost) (*postOutcome, error) {
	defer pp.sessions.Lock(p.secretHash)()
	sess, err := pp.sessions.ByHash(ctx, s, p.secretHash)
	if err != nil {
		return nil, err
	}
	out := &postOutcome{sess: sess, refusal: refusalOf(sess, pp.now())}
	if out.refusal != sessionUsable {
		return out, nil
	}
	if p.integration.AuthMode == catalog.OAuth2 {
		out.started, err = pp.authorizer.startForSession(ctx, s, sess, p.secretHash, p.integration.Name, p.config)
	} else {
		err = p.connect(ctx, s, sess)
	}
	if err != nil {
		if !customerFault(err) {
			return nil, err
		}
		out.failed = err
		if out.spent, err = pp.sessions.NoteFailedPost(ctx, s, p.secretHash, sess); err != nil {
			return nil, err
		}
		return out, nil
	}
	if out.started == nil {
		if err := pp.sessions.MarkConnected(ctx, s, p.secretHash, sess, p.integration.Name); err != nil {
			// The connection is stored; the session stays usable until it
			// expires, which is no worse than an unspent link.
			pp.logger().Warn("marking a connect session used", "session_id", sess.ID, "error", err)
		}
	}
	return out, nil
}

// customerFault reports whether a post's error is the customer's to fix
// (a refused value, a client the provider refused, too many sign-ins in
// progress): the page shows it and counts the post as failed. Any other
// error is Vault's.
func customerFault(err error) bool {
	var ue *userError
	var ee *engineError
	var limit *pendingLimitError
	switch {
	case errors.As(err, &ue), errors.Is(err, errBadConnectionConfig), errors.As(err, &limit):
		return true
	case errors.As(err, &ee):
		return errors.Is(ee.kind, errProviderRefused) || errors.Is(ee.kind, errProviderUnreachable) || errors.Is(ee.kind, errBadConnectionConfig)
	}
	return false
}

// sessionRefusal says why a connect session cannot be used, if it cannot.
type sessionRefusal int

const (
	sessionUsable sessionRefusal = iota
	// sessionUnknown: revoked, or never issued.
	sessionUnknown
	sessionExpired
	// sessionConnected: a session connects once.
	sessionConnected
	// sessionSpent: its failed posts used it up.
	sessionSpent
)

// refusalOf says whether sess (nil when none) can be used at now.
func refusalOf(sess *sessionEntry, now time.Time) sessionRefusal {
	switch {
	case sess == nil:
		return sessionUnknown
	case !now.Before(sess.ExpiresAt):
		return sessionExpired
	case sess.ConnectedIntegration != "":
		return sessionConnected
	case sess.spent():
		return sessionSpent
	}
	return sessionUsable
}
