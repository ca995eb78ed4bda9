// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// A pending authorization is an authorization code grant between its start
// (authorize, or a connect page's OAuth button) and the provider's redirect
// to the callback: stored as an pendingAuthorization under the hash of its
// state. One constructor makes it for both starts, from a plain
// authorizationRequest.

// authorizationRequest is what a pending authorization is made from: the
// fields authorize was given, parsed, or what a connect session's post
// gives. A field not given leaves the connection's own as it is when the
// callback stores it.
type authorizationRequest struct {
	connectionID string
	// scopes replace the integration's when given; each must be one of
	// its scopes or allowed_scopes.
	scopes      []string
	scopesGiven bool
	// connectionConfig replaces the connection's config, or with
	// mergeConfig is set over it.
	connectionConfig         map[string]any
	configGiven, mergeConfig bool
	metadata                 map[string]any
	metadataGiven            bool
	tags                     map[string]string
	tagsGiven                bool
	// returnURL, checked for its form by the caller, must be under one of
	// config's allowed_return_urls.
	returnURL string
	// browserBinding binds the authorization to the browser that started
	// it: authorize's browser_binding, which the application gives again
	// to complete, or the connect page's cookie value. Only its hash is
	// stored.
	browserBinding string
	// sessionHash names the connect session that started the
	// authorization (its secret's hash); createOnly refuses to replace a
	// connection created meanwhile.
	sessionHash string
	createOnly  bool
}

// newPendingAuthorization makes the pending authorization of r's
// connection of in (the effective integration), whose connection is
// existing (nil if none), expiring config's state_ttl after now. Only what
// r gives is kept: the callback merges it into the connection as it is
// then, so edits made in between are not undone. Its errors are the
// caller's mistakes, each naming its field.
func newPendingAuthorization(cfg *configEntry, in *integrationEntry, existing *connectionEntry, r authorizationRequest, now time.Time) (*pendingAuthorization, error) {
	st := &pendingAuthorization{
		Integration:  in.Name,
		ConnectionID: r.connectionID,
		// The code exchange must send what authorize sent, even if the
		// integration changes in between.
		RedirectURL:          in.RedirectURI(cfg.RedirectURL),
		Reauthorization:      existing != nil,
		IntegrationCreatedAt: in.CreatedAt,
		ExpiresAt:            now.Add(cfg.StateTTL),
		SessionHash:          r.sessionHash,
		// Checked again under the connection's lock when the callback
		// stores it: a connection created meanwhile is not replaced.
		CreateOnly: r.createOnly,
	}
	if r.scopesGiven {
		if err := checkRequestedScopes(r.scopes, in); err != nil {
			return nil, err
		}
		st.Scopes = r.scopes
	}
	if err := checkAuthorizationDocuments(r); err != nil {
		return nil, err
	}
	if r.configGiven {
		st.ConnectionConfig = r.connectionConfig
		st.MergeConnectionConfig, st.ReplaceConnectionConfig = r.mergeConfig, !r.mergeConfig
	}
	if r.metadataGiven {
		st.Metadata, st.ReplaceMetadata = r.metadata, true
	}
	if err := validateTags(r.tags); err != nil {
		return nil, err
	}
	if r.tagsGiven && existing != nil {
		// Tags decide who may see a connection; authorize's caller may be
		// a customer's own, who must not relabel an existing connection.
		return nil, fmt.Errorf("tags can only be given when authorize creates the connection; %q exists: change its tags with a write to the connection", r.connectionID)
	}
	st.Tags, st.ReplaceTags = r.tags, r.tagsGiven
	switch {
	case r.sessionHash != "":
		// The page's cookie; the callback stores the connection.
		st.BrowserBindingHash = hashState(r.browserBinding)
	case cfg.applicationCompletes():
		if err := requireApplicationCompletion(r); err != nil {
			return nil, err
		}
		st.BrowserBindingHash, st.ApplicationCompletes = hashState(r.browserBinding), true
	}
	if r.returnURL != "" {
		if len(r.returnURL) > maxReturnURLLen {
			return nil, fmt.Errorf("return_url is longer than %d characters", maxReturnURLLen)
		}
		if err := provider.ValidateAbsoluteURL("return_url", r.returnURL); err != nil {
			return nil, err
		}
		if !returnURLAllowed(r.returnURL, cfg.AllowedReturnURLs) {
			return nil, fmt.Errorf("return_url %q is not under any of config's allowed_return_urls", printable(r.returnURL))
		}
		st.ReturnURL = r.returnURL
	}
	return st, nil
}

// checkAuthorizationDocuments checks the sizes of the connection config and
// metadata r gives.
func checkAuthorizationDocuments(r authorizationRequest) error {
	if r.configGiven {
		if err := checkDocumentSize("connection_config", r.connectionConfig); err != nil {
			return err
		}
	}
	if r.metadataGiven {
		return checkDocumentSize("metadata", r.metadata)
	}
	return nil
}

// Bounds of authorize's browser_binding.
const (
	minBrowserBindingLen = 16
	maxBrowserBindingLen = 512
)

// requireApplicationCompletion checks what an authorization the
// application completes needs: without a return_url the browser could not
// bring the completion back, and without a binding anyone holding the
// completion could complete it.
func requireApplicationCompletion(r authorizationRequest) error {
	if r.returnURL == "" {
		return errors.New("return_url is required: config's oauth_completion is \"application\", so the browser goes back to the application with a connect_completion, which the application gives to complete")
	}
	if r.browserBinding == "" {
		return errors.New("browser_binding is required: config's oauth_completion is \"application\"; give a value derived from your own session of this user (e.g. an HMAC of its session id) and give it again to complete")
	}
	return checkBrowserBinding(r.browserBinding)
}

// checkBrowserBinding checks a browser_binding's length and characters,
// never echoing it.
func checkBrowserBinding(binding string) error {
	if len(binding) < minBrowserBindingLen || len(binding) > maxBrowserBindingLen {
		return fmt.Errorf("browser_binding must be %d to %d characters long", minBrowserBindingLen, maxBrowserBindingLen)
	}
	for _, r := range binding {
		if r < 0x21 || r > 0x7e {
			return errors.New("browser_binding must be printable ASCII characters without spaces")
		}
	}
	return nil
}

// maxReturnURLLen bounds what a pending authorization carries of a return
// URL.
const maxReturnURLLen = 2048

// checkRequestedScopes refuses scopes beyond the integration's scopes and
// allowed_scopes: whoever may call authorize must not widen the access the
// operator configured.
func checkRequestedScopes(requested []string, in *integrationEntry) error {
	allowed := map[string]bool{}
	for _, s := range append(append([]string(nil), in.Scopes...), in.AllowedScopes...) {
		allowed[s] = true
	}
	for _, s := range requested {
		if !allowed[s] {
			return fmt.Errorf("scope %q is not one of the integration's scopes or allowed_scopes", printable(s))
		}
	}
	return nil
}

// returnURLAllowed reports whether u is under one of the allowed URLs,
// compared as parsed URLs: the same scheme and host, and a path equal to the
// allowed path or below it at a '/' boundary. Paths with dot segments or
// encoded slashes, dots or backslashes are refused outright, since browsers
// and servers resolve them differently from a string comparison.
func returnURLAllowed(u string, allowedURLs []string) bool {
	target, err := url.Parse(u)
	if err != nil || target.User != nil || !cleanURLPath(target) {
		return false
	}
	for _, a := range allowedURLs {
		allowed, err := url.Parse(a)
		if err != nil {
			continue
		}
		if !strings.EqualFold(target.Scheme, allowed.Scheme) || !strings.EqualFold(target.Host, allowed.Host) {
			continue
		}
		base := strings.TrimSuffix(allowed.Path, "/")
		if target.Path == base || target.Path == allowed.Path || strings.HasPrefix(target.Path, base+"/") {
			return true
		}
	}
	return false
}

// cleanURLPath reports whether u's path means what it says: no dot
// segments, no encoded '/', '.' or '\\', nothing path.Clean would change.
func cleanURLPath(u *url.URL) bool {
	raw := strings.ToLower(u.EscapedPath())
	for _, bad := range []string{"%2f", "%2e", "%5c", "\\"} {
		if strings.Contains(raw, bad) {
			return false
		}
	}
	if u.Path == "" {
		return true
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
