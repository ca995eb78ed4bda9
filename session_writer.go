// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// Session lifetimes: a link for a customer to open now, not a standing
// credential.
const (
	defaultSessionTTL = 30 * time.Minute
	maxSessionTTL     = 24 * time.Hour
)

// sessionWriter creates connect sessions: a sessionInput checked field by
// field against the mount's config and its integrations, made a session
// entry with its id and form key, and stored by the session store (which
// counts it against max_sessions).
type sessionWriter struct {
	sessions *sessionStore
	now      func() time.Time
	// checkReturnURL is the check authorize makes of a return_url too:
	// its length, an absolute URL, under one of config's
	// allowed_return_urls.
	checkReturnURL func(url string, allowed []string) error
}

// sessionInput is one session request as plain values; strings are
// untrimmed.
type sessionInput struct {
	ConnectionID string
	TTL          time.Duration
	Reconnect    bool
	DisplayName  string
	Integrations []string
	// Tags as given, not yet checked; nil when not given.
	Tags map[string]string
	// Metadata counts only when MetadataGiven.
	Metadata      map[string]any
	MetadataGiven bool
	ReturnURL     string
}

// create checks input and stores the session it makes; it returns the
// session and its secret (the connect page's link holds it). Errors of
// the input are userErrors; a full max_sessions is a sessionLimitError.
func (w *sessionWriter) create(ctx context.Context, s logical.Storage, cfg *configEntry, input sessionInput) (*sessionEntry, string, error) {
	e, err := w.newSessionEntry(ctx, s, cfg, input)
	if err != nil {
		return nil, "", err
	}
	secret, err := w.sessions.Create(ctx, s, e, cfg.MaxSessions)
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// newSessionEntry checks a session request field by field; every error is
// the caller's (a userError) unless storage failed.
func (w *sessionWriter) newSessionEntry(ctx context.Context, s logical.Storage, cfg *configEntry, input sessionInput) (*sessionEntry, error) {
	id := strings.TrimSpace(input.ConnectionID)
	if id == "" {
		return nil, badInput(errors.New("connection_id is required"))
	}
	if err := validateConnectionID(id); err != nil {
		return nil, badInput(err)
	}
	ttl := input.TTL
	if ttl <= 0 || ttl > maxSessionTTL {
		return nil, badInput(fmt.Errorf("ttl must be a positive duration up to %s", maxSessionTTL))
	}
	now := w.now()
	e := &sessionEntry{ConnectionID: id, Reconnect: input.Reconnect, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	display, err := checkDisplayName(input.DisplayName)
	if err != nil {
		return nil, badInput(err)
	}
	e.DisplayName = display
	for _, name := range input.Integrations {
		name = strings.TrimSpace(name)
		if name == "" || slices.Contains(e.Integrations, name) {
			continue
		}
		if err := validateIntegrationName(name); err != nil {
			return nil, badInput(fmt.Errorf("integrations: %w", err))
		}
		in, err := getIntegration(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if in == nil {
			return nil, badInput(fmt.Errorf("integrations: integration %q does not exist", name))
		}
		if !pageConnects(in.AuthMode) {
			return nil, badInput(fmt.Errorf("integrations: %q uses %s, which the connect page does not offer", name, in.AuthMode))
		}
		e.Integrations = append(e.Integrations, name)
	}
	if err := validateTags(input.Tags); err != nil {
		return nil, badInput(err)
	}
	if len(input.Tags) > 0 {
		e.Tags = input.Tags
	}
	if input.MetadataGiven {
		obj, err := jsonObject("metadata", input.Metadata)
		if err == nil {
			err = checkDocumentSize("metadata", obj)
		}
		if err != nil {
			return nil, badInput(err)
		}
		e.Metadata = obj
	}
	if v := strings.TrimSpace(input.ReturnURL); v != "" {
		if err := w.checkReturnURL(v, cfg.AllowedReturnURLs); err != nil {
			return nil, badInput(err)
		}
		e.ReturnURL = v
	}
	sid, err := newSessionID()
	if err != nil {
		return nil, err
	}
	e.ID = sid
	key, _, err := newState()
	if err != nil {
		return nil, err
	}
	e.FormKey = []byte(key)
	return e, nil
}

// pageConnects reports whether the connect page offers integrations of
// mode: APP installations are chosen by the operator, never by the
// customer (see applyInstallationID).
func pageConnects(mode catalog.AuthMode) bool {
	return mode != catalog.App
}
