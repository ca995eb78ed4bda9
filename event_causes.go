// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// What causes which lifecycle event, and when it is recorded:
//
//   - connection.created / connection.updated: a change that gives the
//     connection credentials from outside the engine: a write or import
//     item that creates it, or that sets credential fields or gets an
//     OAUTH2_CC/APP token issued for something new; a completed
//     authorization (created, or updated for a re-authorization). An edit
//     of metadata, connection_config or tags alone, and the engine's own
//     refreshes, record none.
//   - connection.refresh_failed: each failed refresh, with the failure count.
//   - connection.reauthorization_required: a failed refresh that takes the
//     connection to reauthorization_required (invalid_grant, no refresh
//     token) or exhausted, from any other state.
//   - connection.refresh_recovered: the first successful refresh after
//     failures.
//
// The change function attaches them to the entry it returns (noteEvent);
// the store records them once the entry is saved, under the connection's
// lock, so one connection's events are recorded in the order of its
// changes, before the request that caused them answers (before a
// background refresh is done).
//
// A recording that fails after the save leaves the events owed: kept in
// memory and recorded again by the periodic hook (event_recording.go).
// A write or import then answers 500 saying so, so that its caller repeats
// it and the event is recorded durably then too (as connection.updated, the
// connection exists by then); a refresh or a completed authorization, whose
// provider answer is stored, goes on and logs it. Receivers may so see an
// event twice; they miss one when the process stops between a save and its
// recording or while one is owed, or when more than maxOwedEvents are owed
// (each drop logged and counted). docs/events.md lists these windows.
//
// connection.deleted is recorded under the lock once the entry is
// deleted, and only then are its tokens revoked: a delete storage refuses
// answers a 500 with nothing recorded or revoked; one whose event cannot
// be recorded is done, owes the event and says so in a warning.
//
// connection.authorization_failed is recorded by the callback, which
// stores nothing: a provider's error, or a failed code exchange. A failed
// recording is logged; the customer sees the failure and starts again.

// noteWritten attaches what a connection write causes (the
// connectionWriter's: an API write, an import item, a connect page's post):
// created for a new connection, updated when the write replaced the
// credentials (gave credential fields, or got a token issued), nothing for
// an edit of metadata, config or tags alone.
func (c *connectionEntry) noteWritten(before *connectionEntry, credentialsWritten bool) {
	switch {
	case before == nil:
		c.noteEvent(eventConnectionCreated, nil)
	case credentialsWritten || !sameCredentials(before.Credentials, c.Credentials):
		c.noteEvent(eventConnectionUpdated, nil)
	}
}

// noteAuthorized attaches what a completed authorization causes: created,
// or updated for a re-authorization.
func (c *connectionEntry) noteAuthorized(created bool) {
	if created {
		c.noteEvent(eventConnectionCreated, nil)
		return
	}
	c.noteEvent(eventConnectionUpdated, nil)
}

// authorizationFailedData is the data of a connection.authorization_failed:
// the state's connection, with the tags authorize was given, else the
// connection's (existing, nil when there is none).
func authorizationFailedData(st *pendingAuthorization, existing *connectionEntry, e *eventError) eventData {
	d := eventData{Integration: st.Integration, ConnectionID: st.ConnectionID, AuthMode: string(catalog.OAuth2), Error: e}
	// The stored connection's tags when it exists: authorize's only ever
	// label a connection the callback creates.
	switch {
	case existing != nil:
		d.Tags = cloneMap(existing.Tags)
	case st.ReplaceTags:
		d.Tags = cloneMap(st.Tags)
	}
	if existing != nil {
		d.RefreshStatus, d.RefreshFailures = string(existing.refreshState()), existing.RefreshFailures
	}
	return d
}

// noteRefreshOutcome attaches what a refresh caused: statusBefore and
// failuresBefore are c's refresh state before it, failure its classified
// error (nil on success), secrets what the description must not quote.
func (c *connectionEntry) noteRefreshOutcome(statusBefore refreshStatus, failuresBefore int, failure error, secrets []string) {
	if failure == nil {
		if failuresBefore > 0 {
			c.noteEvent(eventRefreshRecovered, nil)
		}
		return
	}
	c.noteEvent(eventRefreshFailed, eventErrorOf(failure, secrets))
	stopped := c.RefreshStatus == refreshReauth || c.RefreshStatus == refreshExhausted
	wasStopped := statusBefore == refreshReauth || statusBefore == refreshExhausted
	if stopped && !wasStopped {
		c.noteEvent(eventReauthorizationRequired, eventErrorOf(failure, secrets))
	}
}

// Bounds of an event's error, as the provider client bounds what it keeps.
const (
	maxEventErrorCodeLen        = 100
	maxEventErrorDescriptionLen = 300
)

// eventErrorOf describes a failed refresh or code exchange for an event:
// the provider's OAuth error code and description when it answered with
// one, else the engine's kind of failure; scrubbed of secrets (and of the
// request's own secrets, which the provider client removed already).
func eventErrorOf(err error, secrets []string) *eventError {
	var pe *provider.Error
	code, desc := "", err.Error()
	switch {
	case errors.As(err, &pe) && pe.Unreachable():
		code = "provider_unreachable"
	case errors.As(err, &pe):
		code, desc = pe.Code, pe.Description
		if code == "" {
			code = fmt.Sprintf("http_%d", pe.Status)
		}
	case errors.Is(err, errBadConnectionConfig):
		code = "bad_connection_config"
	case errors.Is(err, errNotRefreshable):
		code = "no_refresh_token"
	default:
		code = "refresh_error"
	}
	return scrubbedEventError(code, desc, secrets)
}

// scrubbedEventError bounds and scrubs an error's code and description.
func scrubbedEventError(code, desc string, secrets []string) *eventError {
	return &eventError{
		Code:        safetext.Redact(code, maxEventErrorCodeLen, secrets...),
		Description: safetext.Redact(desc, maxEventErrorDescriptionLen, secrets...),
	}
}

// eventSecrets are every secret the plugin holds for a connection of in
// (c may be nil): its credentials, the integration's client secret and
// private key, the config values its schema marks secret, and the Basic
// forms and base64 of each, which a provider may echo.
func eventSecrets(in *integrationEntry, c *connectionEntry, more ...string) []string {
	var all []string
	for _, s := range connectionSecrets(in, c, more...) {
		all = append(all, s, base64.StdEncoding.EncodeToString([]byte(s)))
	}
	return all
}

// connectionSecrets are eventSecrets without their base64 forms, each
// non-empty: for a scrubber that looks for base64 encodings itself
// (safetext's deep scrub).
func connectionSecrets(in *integrationEntry, c *connectionEntry, more ...string) []string {
	out := append([]string(nil), more...)
	if in != nil {
		out = append(out, in.ClientSecret, in.PrivateKey, basicForm(in.ClientID, in.ClientSecret))
	}
	if c != nil {
		cr := c.Credentials
		out = append(out, cr.AccessToken, cr.RefreshToken, cr.ClientSecret, cr.APIKey, cr.Password,
			basicForm(cr.ClientID, cr.ClientSecret), basicForm(cr.Username, cr.Password))
		for _, v := range cr.Custom {
			out = append(out, v)
		}
		if in != nil {
			for k, f := range in.ConnectionConfigSchema {
				if v, ok := c.ConnectionConfig[k]; ok && f.Secret && v != nil {
					out = append(out, fmt.Sprint(v))
				}
			}
		}
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// basicForm is user:secret as an HTTP Basic credential carries it; empty
// without a secret.
func basicForm(user, secret string) string {
	if secret == "" {
		return ""
	}
	return user + ":" + secret
}
