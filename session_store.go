// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// Connect sessions: what lets a customer's browser, which holds no Vault
// token, connect one connection id through the hosted page
// (path_connect_ui.go). A session is stored under the SHA-256 of its
// secret, as pending authorizations are, so storage never holds a usable
// secret; a second entry maps its public session_id (what the creator may
// revoke it by) to that hash, and an expiry entry by minute lets the
// periodic sweep find it without listing every session. The id entries are
// what the mount's max_sessions counts.
//
// sessionStore holds them: their storage, the lock of each session, the
// count and the sweep. The backend builds one; the sessions paths, the
// connect page and the callback of an authorization a session started use
// it.
type sessionStore struct {
	// locks serialise everything that uses one session, so that two tabs
	// posting at once connect it once.
	locks *keyedLocks
	count listedCount
	// expiry is the sessions' expiry entries by minute, which the sweep
	// lists.
	expiry *expiryIndex
	now    func() time.Time
	// logger is the backend's, set once Vault has set it up.
	logger func() hclog.Logger
}

func newSessionStore(now func() time.Time, logger func() hclog.Logger) *sessionStore {
	return &sessionStore{
		locks:  newKeyedLocks(),
		expiry: newExpiryIndex(sessionExpiryPrefix, "sessions", sessionSweepPage),
		now:    now,
		logger: logger,
	}
}

const (
	sessionPrefix       = "connect_sessions/"
	sessionIDPrefix     = "connect_session_ids/"
	sessionExpiryPrefix = "connect_session_expiry/"
)

// sessionEntry is one connect session.
type sessionEntry struct {
	entryFormat
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	// Integrations are the ones the page offers; empty offers every
	// integration of the mount the page can connect.
	Integrations []string          `json:"integrations,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
	Metadata     map[string]any    `json:"metadata,omitempty"`
	ReturnURL    string            `json:"return_url,omitempty"`
	// Reconnect replaces the credentials of an existing connection and
	// keeps its metadata and tags.
	Reconnect bool `json:"reconnect,omitempty"`
	// DisplayName is whom the page connects for ("Acme Corp").
	DisplayName string `json:"display_name,omitempty"`
	// FormKey signs the page's form tokens. It is random per session and
	// never leaves storage, so that a form of one session is refused with
	// another session's secret.
	FormKey   []byte    `json:"form_key"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// ConnectedIntegration is set once the session has connected: a
	// session connects once.
	ConnectedIntegration string    `json:"connected_integration,omitempty"`
	ConnectedAt          time.Time `json:"connected_at,omitempty"`
	// FailedPosts counts the page's posts that failed (a refused value, a
	// client the provider refused): at maxFailedPosts the link is spent,
	// so that one link cannot make unbounded calls to a provider.
	FailedPosts int `json:"failed_posts,omitempty"`
}

// maxFailedPosts is how many failed posts a connect session allows.
const maxFailedPosts = 5

// spent reports whether the session's failed posts used it up.
func (e *sessionEntry) spent() bool { return e.FailedPosts >= maxFailedPosts }

// allows reports whether the session may connect integration.
func (e *sessionEntry) allows(integration string) bool {
	return len(e.Integrations) == 0 || slices.Contains(e.Integrations, integration)
}

// formToken is the token a form of this session carries for one
// integration and purpose: a page can post only into its own session.
func (e *sessionEntry) formToken(integration, purpose string) string {
	mac := hmac.New(sha256.New, e.FormKey)
	mac.Write([]byte(integration + "\x00" + purpose))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// validFormToken compares in constant time.
func (e *sessionEntry) validFormToken(integration, purpose, token string) bool {
	want := e.formToken(integration, purpose)
	return token != "" && hmac.Equal([]byte(want), []byte(token))
}

// sessionIDEntry maps a session_id to its session.
type sessionIDEntry struct {
	entryFormat
	SecretHash string    `json:"secret_hash"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func sessionKey(secretHash string) string { return sessionPrefix + secretHash }
func sessionIDKey(id string) string       { return sessionIDPrefix + id }

// newSessionSecret returns a secret of 32 random bytes and its hash.
func newSessionSecret() (string, string, error) {
	return newState()
}

// hashSessionSecret is how a session is found from its secret.
func hashSessionSecret(secret string) string { return hashState(secret) }

// newSessionID is a public id of 16 random bytes, unrelated to the secret.
func newSessionID() (string, error) {
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generating session id: %w", err)
	}
	return hex.EncodeToString(buf), nil
}

// validSessionID accepts what newSessionID makes, so that a path segment
// never reaches storage as anything else.
func validSessionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// sessionLimitError refuses a session beyond config's max_sessions.
type sessionLimitError struct{ max int }

func (e *sessionLimitError) Error() string {
	return fmt.Sprintf("this mount already has %d connect sessions, config's max_sessions: retry when some have expired or been revoked, or raise the limit", e.max)
}

// createSession stores e under a new secret and returns the secret. A
// session beyond max is refused with a sessionLimitError: sessions are
// created for connection ids that need not exist, so without a cap one
// caller could fill storage until they expire.
func (ss *sessionStore) Create(ctx context.Context, s logical.Storage, e *sessionEntry, max int) (string, error) {
	secret, hash, err := newSessionSecret()
	if err != nil {
		return "", err
	}
	if err := ss.count.load(ctx, s, sessionIDPrefix, "sessions"); err != nil {
		return "", err
	}
	defer ss.count.changing()()
	if !ss.count.reserve(max) {
		return "", &sessionLimitError{max}
	}
	// The id entry, which the count counts, goes last: it never names a
	// session that was not stored.
	err = putJSON(ctx, s, sessionKey(hash), e)
	if err == nil {
		err = ss.expiry.put(ctx, s, hash, e.ExpiresAt)
	}
	if err == nil {
		err = putJSON(ctx, s, sessionIDKey(e.ID), &sessionIDEntry{SecretHash: hash, ExpiresAt: e.ExpiresAt})
	}
	if err != nil {
		ss.count.release()
		return "", err
	}
	return secret, nil
}

// BySecret returns the session a secret opens and the secret's hash, nil
// when there is none (never created, revoked or swept). An expired one is
// returned: the caller says so in words.
func (ss *sessionStore) BySecret(ctx context.Context, s logical.Storage, secret string) (*sessionEntry, string, error) {
	if secret == "" {
		return nil, "", nil
	}
	hash := hashSessionSecret(secret)
	e, err := ss.ByHash(ctx, s, hash)
	return e, hash, err
}

// ByHash returns the session stored under a secret's hash, nil if none.
func (ss *sessionStore) ByHash(ctx context.Context, s logical.Storage, secretHash string) (*sessionEntry, error) {
	var e sessionEntry
	found, err := getJSON(ctx, s, sessionKey(secretHash), &e)
	if err != nil || !found {
		return nil, err
	}
	return &e, nil
}

// ByID returns a session by its public id, nil if none.
func (ss *sessionStore) ByID(ctx context.Context, s logical.Storage, id string) (*sessionEntry, error) {
	var idx sessionIDEntry
	found, err := getJSON(ctx, s, sessionIDKey(id), &idx)
	if err != nil || !found {
		return nil, err
	}
	var e sessionEntry
	found, err = getJSON(ctx, s, sessionKey(idx.SecretHash), &e)
	if err != nil || !found {
		return nil, err
	}
	return &e, nil
}

// Lock takes a session's lock and returns its unlock.
func (ss *sessionStore) Lock(secretHash string) func() {
	return ss.locks.Lock(secretHash)
}

// MarkConnected records, under the session's lock, that the session has
// connected integration.
func (ss *sessionStore) MarkConnected(ctx context.Context, s logical.Storage, secretHash string, e *sessionEntry, integration string) error {
	e.ConnectedIntegration = integration
	e.ConnectedAt = ss.now()
	return putJSON(ctx, s, sessionKey(secretHash), e)
}

// NoteFailedPost counts, under the session's lock, a post of the page that
// failed, and reports whether the session is now spent.
func (ss *sessionStore) NoteFailedPost(ctx context.Context, s logical.Storage, secretHash string, e *sessionEntry) (bool, error) {
	e.FailedPosts++
	return e.spent(), putJSON(ctx, s, sessionKey(secretHash), e)
}

// Revoke deletes a session by its id; false when there is none. The id
// entry is read again under the session's lock: revokes that waited on the
// lock together find it gone after the first, and report false.
func (ss *sessionStore) Revoke(ctx context.Context, s logical.Storage, id string) (bool, error) {
	var idx sessionIDEntry
	found, err := getJSON(ctx, s, sessionIDKey(id), &idx)
	if err != nil || !found {
		return false, err
	}
	defer ss.Lock(idx.SecretHash)()
	found, err = getJSON(ctx, s, sessionIDKey(id), &idx)
	if err != nil || !found {
		return false, err
	}
	return true, ss.delete(ctx, s, id, idx)
}

// delete deletes a session's entries, under the session's lock: the id
// entry first, as the pending authorization store's Take deletes a state's index entry
// first, so that a failure leaves a session the sweep still finds by its
// expiry entry. The count is lowered only when an id entry was there to
// delete, so that a sweep finishing a failed revoke does not lower it twice.
func (ss *sessionStore) delete(ctx context.Context, s logical.Storage, id string, idx sessionIDEntry) error {
	if err := ss.count.load(ctx, s, sessionIDPrefix, "sessions"); err != nil {
		return err
	}
	defer ss.count.changing()()
	idEntry, err := s.Get(ctx, sessionIDKey(id))
	if err != nil {
		return fmt.Errorf("reading session id: %w", err)
	}
	if idEntry != nil {
		if err := s.Delete(ctx, sessionIDKey(id)); err != nil {
			return fmt.Errorf("deleting session id: %w", err)
		}
		ss.count.removed()
	}
	if err := s.Delete(ctx, sessionKey(idx.SecretHash)); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	if err := ss.expiry.delete(ctx, s, idx.SecretHash, idx.ExpiresAt); err != nil {
		ss.logger().Warn("deleting a session's expiry entry; the sweep removes it", "error", err)
	}
	return nil
}

// sessionSweepPage bounds the sessions one periodic sweep deletes.
const sessionSweepPage = 1000

// SweepExpired deletes up to a page of expired sessions, oldest minute
// first, with their id and expiry entries.
func (ss *sessionStore) SweepExpired(ctx context.Context, s logical.Storage) error {
	now := ss.now()
	return ss.expiry.sweep(ctx, s, now, func(ctx context.Context, s logical.Storage, expiryKey, hash string) error {
		return ss.sweep(ctx, s, expiryKey, hash, now)
	})
}

// sweep deletes one session of a past minute, or only its expiry
// entry when the session was revoked meanwhile. A session whose lock is
// held (a callback exchanging its code with a provider, for up to the
// provider timeout) is left to the next sweep: the periodic hook, which
// also runs the refresh tick, must not wait on a provider.
func (ss *sessionStore) sweep(ctx context.Context, s logical.Storage, expiryKey, hash string, now time.Time) error {
	unlock, ok := ss.locks.TryLock(hash)
	if !ok {
		return nil
	}
	defer unlock()
	var e sessionEntry
	found, err := getJSON(ctx, s, sessionKey(hash), &e)
	if err != nil {
		return err
	}
	if !found {
		return s.Delete(ctx, expiryKey)
	}
	if now.Before(e.ExpiresAt) {
		return nil // only if the clock went back
	}
	return ss.delete(ctx, s, e.ID, sessionIDEntry{SecretHash: hash, ExpiresAt: e.ExpiresAt})
}
