// SPDX-License-Identifier: MPL-2.0

// Package oauthtest is a small, real OAuth 2.0 authorization server for the
// tests: it listens on loopback, speaks RFC 6749 over HTTP, keeps its own
// token state, and can be told to fail the way providers do.
package oauthtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Server is the authorization server. Its exported knobs may be changed
// between requests through the setters, which lock.
type Server struct {
	*httptest.Server

	ClientID     string
	ClientSecret string

	mu            sync.Mutex
	refreshTokens map[string]bool
	accessTokens  map[string]time.Time
	requests      int
	lastForm      url.Values
	lastAuthStyle string

	// clients are the OAuth clients registered besides ClientID, id →
	// secret: providers whose customers each create their own API client.
	clients map[string]string
	// issuedTo is the client each access and refresh token was issued to:
	// a refresh or a revocation by another client is refused, as RFC 6749
	// section 6 and RFC 7009 section 2.1 require.
	issuedTo map[string]string
	// lastClientID is the client id the last token or revocation request
	// presented.
	lastClientID string

	redirectURIs map[string]bool
	// redirectNames are registered names sent in place of a redirect URI
	// (eBay's RuName), each with the URL the browser is sent back to.
	redirectNames map[string]string
	codes         map[string]*grant
	denyCode      string
	denyDesc      string
	lastAuthorize url.Values
	lastTenant    string
	revoked       []string
	revokeStatus  int
	appID         string
	appKey        *rsa.PublicKey
	scopes        map[string]bool

	expiresIn    int
	rotate       bool
	omitRefresh  bool
	failCode     string
	failStatus   int
	delay        time.Duration
	authStyle    string
	extraFields  map[string]any
	formEncoding bool
	override     http.HandlerFunc
	onToken      func()

	lastContentType string
	callbackExtras  url.Values

	// reuseGrace keeps a rotated refresh token usable for a while, as
	// providers with a rotation grace period do; spentAt says since when.
	reuseGrace time.Duration
	spentAt    map[string]time.Time

	// failureRate makes that share of token requests fail with 503
	// temporarily_unavailable, at random.
	failureRate float64

	// refusals counts refresh tokens refused as spent or unknown.
	refusals int

	// seen is every secret the server issued or was sent: what must never
	// appear in a log.
	seen []string

	// consent makes authorize show a page a person answers before the
	// browser is sent back (see consent.go).
	consent bool
}

// New starts a server on loopback. Call Close when done.
func New() *Server {
	s := newServer()
	s.Start()
	return s
}

// newServer is a server not yet listening.
func newServer() *Server {
	s := &Server{
		ClientID:      "client-" + randomString(4),
		ClientSecret:  "client-secret-" + randomString(12),
		refreshTokens: map[string]bool{},
		accessTokens:  map[string]time.Time{},
		clients:       map[string]string{},
		issuedTo:      map[string]string{},
		redirectURIs:  map[string]bool{},
		redirectNames: map[string]string{},
		codes:         map[string]*grant{},
		expiresIn:     3600,
		rotate:        true,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /consent", s.consentAnswer)
	mux.HandleFunc("POST /revoke", s.revoke)
	// Per-tenant endpoints, for providers whose URLs carry the customer's
	// subdomain: /t/{tenant}/authorize and so on.
	mux.HandleFunc("/t/{tenant}/token", s.tenant(s.token))
	mux.HandleFunc("GET /t/{tenant}/authorize", s.tenant(s.authorize))
	mux.HandleFunc("POST /t/{tenant}/revoke", s.tenant(s.revoke))
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.installationToken)
	s.Server = httptest.NewUnstartedServer(mux)
	return s
}

// grant is an authorization code and what it was issued for.
type grant struct {
	redirectURI string
	challenge   string
	scope       string
	expires     time.Time
}

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// AuthURL is the authorization endpoint.
func (s *Server) AuthURL() string { return s.URL + "/authorize" }

// RevocationURL is the RFC 7009 revocation endpoint.
func (s *Server) RevocationURL() string { return s.URL + "/revoke" }

// RegisterRedirectURI allows a redirect URI, as registering an OAuth app
// does; the authorize endpoint refuses any other.
func (s *Server) RegisterRedirectURI(uri string) { s.set(func() { s.redirectURIs[uri] = true }) }

// RegisterRedirectName registers a name that clients send as redirect_uri
// in place of a URL, as eBay's RuName: the authorize endpoint sends the
// browser back to uri, and the code is bound to the name, which the code
// exchange must send again.
func (s *Server) RegisterRedirectName(name, uri string) {
	s.set(func() { s.redirectNames[name] = uri })
}

// Deny makes the authorize endpoint redirect back with an error, as when the
// user refuses consent; an empty code consents again.
func (s *Server) Deny(code, description string) {
	s.set(func() { s.denyCode, s.denyDesc = code, description })
}

// AllowScopes limits the scopes the authorize endpoint grants; a request for
// any other is refused with invalid_scope. No call: any scope.
func (s *Server) AllowScopes(scopes ...string) {
	s.set(func() {
		s.scopes = map[string]bool{}
		for _, sc := range scopes {
			s.scopes[sc] = true
		}
	})
}

func (s *Server) scopesAllowed(requested string) bool {
	if s.scopes == nil {
		return true
	}
	for _, sc := range strings.Fields(requested) {
		if !s.scopes[sc] {
			return false
		}
	}
	return true
}

// LastAuthorize is the query of the last authorization request.
func (s *Server) LastAuthorize() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuthorize
}

// LastTenant is the tenant of the last per-tenant request, or the
// installation id of the last installation-token request.
func (s *Server) LastTenant() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastTenant
}

// Revoked lists the tokens revoked so far.
func (s *Server) Revoked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.revoked...)
}

// FailRevocation makes the revocation endpoint answer status; 0 stops.
func (s *Server) FailRevocation(status int) { s.set(func() { s.revokeStatus = status }) }

// SetApp registers a GitHub-style app: installation tokens are issued for
// JWTs that appID signed with the key matching pub.
func (s *Server) SetApp(appID string, pub *rsa.PublicKey) {
	s.set(func() { s.appID, s.appKey = appID, pub })
}

// IssueRefreshToken mints a valid refresh token, as if a user had consented
// somewhere else; tests import it into a connection.
func (s *Server) IssueRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newRefreshToken(s.ClientID)
}

// AccessTokenValid reports whether the server issued tok and it has not
// expired.
func (s *Server) AccessTokenValid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.accessTokens[tok]
	return ok && time.Now().Before(exp)
}

// RefreshTokenValid reports whether rt can still be spent.
func (s *Server) RefreshTokenValid(rt string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshTokenUsable(rt)
}

// refreshTokenUsable: valid, or rotated within the reuse grace period. The
// caller holds s.mu.
func (s *Server) refreshTokenUsable(rt string) bool {
	if s.refreshTokens[rt] {
		return true
	}
	at, spent := s.spentAt[rt]
	return spent && time.Since(at) < s.reuseGrace
}

// SetFailureRate makes a share p (0 to 1) of token requests fail with 503
// temporarily_unavailable, at random, as a flaky provider does.
func (s *Server) SetFailureRate(p float64) { s.set(func() { s.failureRate = p }) }

// SetReuseGrace keeps a rotated refresh token usable for d after its
// rotation (Okta's and Auth0's rotation grace periods): a client that lost
// the answer can ask again with the old one. 0, the default, refuses a
// spent refresh token at once.
func (s *Server) SetReuseGrace(d time.Duration) { s.set(func() { s.reuseGrace = d }) }

// Requests is the number of token requests served so far.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// LastForm is the form of the last token request.
func (s *Server) LastForm() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastForm
}

// AddClient registers another OAuth client, or gives a registered one a
// new secret (a rotation: the old secret stops working). ClientID stays
// registered.
func (s *Server) AddClient(id, secret string) {
	s.set(func() {
		s.clients[id] = secret
		s.remember(secret)
	})
}

// LastClientID is the client id the last token or revocation request
// presented, whether or not it authenticated.
func (s *Server) LastClientID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastClientID
}

// IssuedTo is the client id an access or refresh token was issued to, ""
// for one the server did not issue.
func (s *Server) IssuedTo(token string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuedTo[token]
}

// LastAuthStyle is how the last request authenticated: "header" or "params".
func (s *Server) LastAuthStyle() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuthStyle
}

// SetExpiresIn sets expires_in of issued tokens; 0 omits it.
func (s *Server) SetExpiresIn(secs int) { s.set(func() { s.expiresIn = secs }) }

// SetRotate sets whether a refresh spends the old refresh token and issues a
// new one (the default), or answers without a refresh token at all
// (omit=true), or keeps the old one valid (rotate=false, omit=false).
func (s *Server) SetRotate(rotate, omit bool) {
	s.set(func() { s.rotate, s.omitRefresh = rotate, omit })
}

// Fail makes every token request fail with the RFC 6749 error code and
// status; an empty code stops failing.
func (s *Server) Fail(code string, status int) {
	s.set(func() { s.failCode, s.failStatus = code, status })
}

// SetDelay makes the token endpoint wait before answering.
func (s *Server) SetDelay(d time.Duration) { s.set(func() { s.delay = d }) }

// RequireAuthStyle makes the server accept client credentials only in the
// Authorization header ("header") or only in the form ("params").
func (s *Server) RequireAuthStyle(style string) { s.set(func() { s.authStyle = style }) }

// SetExtraFields adds members to every token response.
func (s *Server) SetExtraFields(m map[string]any) { s.set(func() { s.extraFields = m }) }

// SetFormEncoding makes token responses application/x-www-form-urlencoded,
// as GitHub's classic OAuth apps answer.
func (s *Server) SetFormEncoding(on bool) { s.set(func() { s.formEncoding = on }) }

// Refusals is how many refresh requests were refused because their refresh
// token was spent, revoked or unknown.
func (s *Server) Refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusals
}

// Secrets lists every secret the server knows: its client secret, every
// token and code it issued, and every code verifier and state it was sent.
func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{s.ClientSecret}, s.seen...)
}

// remember records secrets; the caller holds s.mu.
func (s *Server) remember(values ...string) {
	for _, v := range values {
		if v != "" {
			s.seen = append(s.seen, v)
		}
	}
}

// parseTokenBody fills r.PostForm from a form body or, as some providers
// take it, a JSON object of strings.
func parseTokenBody(r *http.Request) error {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return r.ParseForm()
	}
	var obj map[string]string
	if err := json.NewDecoder(r.Body).Decode(&obj); err != nil {
		return err
	}
	r.PostForm = url.Values{}
	for k, v := range obj {
		r.PostForm.Set(k, v)
	}
	return nil
}

// LastContentType is the Content-Type of the last token request.
func (s *Server) LastContentType() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastContentType
}

// SetCallbackExtras adds query parameters to the redirect back after
// consent, as QuickBooks adds realmId.
func (s *Server) SetCallbackExtras(q url.Values) { s.set(func() { s.callbackExtras = q }) }

// OnToken calls f at the start of every token request, before the answer:
// a test's way to act while a provider call is in flight.
func (s *Server) OnToken(f func()) { s.set(func() { s.onToken = f }) }

// SetOverride makes the token and revocation endpoints answer with h once
// they have counted and recorded the request: a broken or hostile provider
// (a redirect, a huge or malformed body, an echo of what it was sent). Nil
// restores normal answers.
func (s *Server) SetOverride(h http.HandlerFunc) { s.set(func() { s.override = h }) }

func (s *Server) set(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := parseTokenBody(r); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body is neither a form nor a JSON object of strings")
		return
	}
	s.mu.Lock()
	s.lastContentType = r.Header.Get("Content-Type")
	delay, onToken := s.delay, s.onToken
	s.mu.Unlock()
	if onToken != nil {
		onToken()
	}
	time.Sleep(delay)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.lastForm = r.PostForm
	s.remember(r.PostForm.Get("code"), r.PostForm.Get("code_verifier"), r.PostForm.Get("refresh_token"))
	if s.override != nil {
		s.override(w, r)
		return
	}

	style, client, ok := s.authenticate(r)
	s.lastAuthStyle, s.lastClientID = style, client
	if !ok {
		writeError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if s.failCode != "" {
		writeError(w, s.failStatus, s.failCode, "the server was told to fail")
		return
	}
	if s.failureRate > 0 && mathrand.Float64() < s.failureRate {
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the server is flaky")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if !s.refreshTokenUsable(rt) || s.issuedTo[rt] != client {
			s.refusals++
			writeError(w, http.StatusBadRequest, "invalid_grant", "refresh token is invalid, expired or revoked")
			return
		}
		resp := s.issue(client, r.PostForm.Get("scope"))
		switch {
		case s.omitRefresh:
		case s.rotate:
			if s.refreshTokens[rt] {
				delete(s.refreshTokens, rt)
				if s.spentAt == nil {
					s.spentAt = map[string]time.Time{}
				}
				s.spentAt[rt] = time.Now()
			}
			resp["refresh_token"] = s.newRefreshToken(client)
		default:
			resp["refresh_token"] = rt
		}
		s.write(w, resp)
	case "client_credentials":
		s.write(w, s.issue(client, r.PostForm.Get("scope")))
	case "authorization_code":
		g, errCode := s.redeem(r.PostForm)
		if errCode != "" {
			writeError(w, http.StatusBadRequest, errCode, "authorization code is invalid, expired, used or does not match")
			return
		}
		resp := s.issue(client, g.scope)
		resp["refresh_token"] = s.newRefreshToken(client)
		s.write(w, resp)
	default:
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type is not supported")
	}
}

// authorize is the authorization endpoint: it checks the request as a
// provider would, then (the user consenting at once) redirects back with a
// code bound to the redirect URI, scope and PKCE challenge.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.answerAuthorize(w, r, r.URL.Query(), "")
}

// answerAuthorize answers an authorization request: with the consent page
// when consent is on and no decision was given, else by redirecting back
// with a code, or an error when the request is bad or consent refused.
func (s *Server) answerAuthorize(w http.ResponseWriter, r *http.Request, q url.Values, decision string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAuthorize = q
	s.remember(q.Get("state"))
	redirect := q.Get("redirect_uri")
	// A registered name sends the browser to its URL; the code stays bound
	// to what the client sent.
	back, named := s.redirectNames[redirect]
	if !named {
		back = redirect
	}
	switch {
	case q.Get("client_id") != s.ClientID:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case !s.redirectURIs[redirect] && !named:
		// Never redirect to an unregistered URI (RFC 6749 4.1.2.1).
		http.Error(w, "redirect_uri is not registered", http.StatusBadRequest)
		return
	}
	if s.consent && decision == "" {
		writeConsentPage(w, q)
		return
	}
	answer := url.Values{"state": {q.Get("state")}}
	switch {
	case decision == consentDeny:
		answer.Set("error", "access_denied")
		answer.Set("error_description", "the user refused consent")
	case q.Get("response_type") != "code":
		answer.Set("error", "unsupported_response_type")
	case q.Get("state") == "":
		answer.Set("error", "invalid_request")
		answer.Set("error_description", "state is required")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		answer.Set("error", "invalid_request")
		answer.Set("error_description", "PKCE with S256 is required")
	case !s.scopesAllowed(q.Get("scope")):
		answer.Set("error", "invalid_scope")
		answer.Set("error_description", "the requested scope is not allowed")
	case s.denyCode != "":
		answer.Set("error", s.denyCode)
		answer.Set("error_description", s.denyDesc)
	default:
		code := "code-" + randomString(16)
		s.remember(code)
		for k := range s.callbackExtras {
			answer.Set(k, s.callbackExtras.Get(k))
		}
		s.codes[code] = &grant{redirectURI: redirect, challenge: q.Get("code_challenge"), scope: q.Get("scope"), expires: time.Now().Add(time.Minute)}
		answer.Set("code", code)
	}
	http.Redirect(w, r, back+"?"+answer.Encode(), http.StatusFound)
}

// redeem spends an authorization code, checking the redirect URI and the
// PKCE verifier (RFC 7636 4.6). It returns an RFC 6749 error code on failure.
func (s *Server) redeem(form url.Values) (*grant, string) {
	code := form.Get("code")
	g, ok := s.codes[code]
	if !ok {
		return nil, "invalid_grant"
	}
	delete(s.codes, code) // single use, even when the rest fails
	if time.Now().After(g.expires) || form.Get("redirect_uri") != g.redirectURI {
		return nil, "invalid_grant"
	}
	sum := sha256.Sum256([]byte(form.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		return nil, "invalid_grant"
	}
	return g, ""
}

// revoke is the RFC 7009 endpoint.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body is not a form")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remember(r.PostForm.Get("token"))
	if s.override != nil {
		s.override(w, r)
		return
	}
	_, client, ok := s.authenticate(r)
	s.lastClientID = client
	if !ok {
		writeError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if s.revokeStatus != 0 {
		writeError(w, s.revokeStatus, "temporarily_unavailable", "the server was told to fail")
		return
	}
	tok := r.PostForm.Get("token")
	if owner, known := s.issuedTo[tok]; known && owner != client {
		writeError(w, http.StatusBadRequest, "unauthorized_client", "the token was issued to another client")
		return
	}
	delete(s.refreshTokens, tok)
	delete(s.accessTokens, tok)
	s.revoked = append(s.revoked, tok)
	w.WriteHeader(http.StatusOK)
}

// tenant records the {tenant} of a per-tenant route before handling it.
func (s *Server) tenant(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.set(func() { s.lastTenant = r.PathValue("tenant") })
		h(w, r)
	}
}

// installationToken issues a GitHub-style installation token for a JWT
// signed by the registered app.
func (s *Server) installationToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.remember(raw)
	if !ok || s.appKey == nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "A JSON web token could not be decoded"})
		return
	}
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return s.appKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(s.appID), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "'Expiration time' claim ('exp') is too far in the future or the JWT is invalid"})
		return
	}
	if s.failCode != "" {
		writeJSON(w, s.failStatus, map[string]any{"message": "Not Found"})
		return
	}
	tok := "ghs_" + randomString(16)
	s.remember(tok)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	s.accessTokens[tok] = exp
	s.lastTenant = r.PathValue("id")
	writeJSON(w, http.StatusCreated, map[string]any{
		"token": tok, "expires_at": exp.Format(time.RFC3339), "permissions": map[string]string{"contents": "read"},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// authenticate checks the client credentials, in the header or the form,
// and returns how they came and the client id presented.
func (s *Server) authenticate(r *http.Request) (style, clientID string, ok bool) {
	id, secret, inHeader := r.BasicAuth()
	style = "header"
	if inHeader {
		// RFC 6749 2.3.1: the header values are form-encoded.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		style = "params"
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if s.authStyle != "" && s.authStyle != style {
		return style, id, false
	}
	return style, id, s.clientSecretMatches(id, secret)
}

// clientSecretMatches reports whether secret is the registered client id's.
func (s *Server) clientSecretMatches(id, secret string) bool {
	if id == s.ClientID {
		return secret == s.ClientSecret
	}
	want, registered := s.clients[id]
	return registered && secret == want
}

func (s *Server) issue(client, scope string) map[string]any {
	at := "at-" + randomString(16)
	s.remember(at)
	s.issuedTo[at] = client
	lifetime := time.Duration(s.expiresIn) * time.Second
	if s.expiresIn == 0 {
		lifetime = 100 * 365 * 24 * time.Hour
	}
	s.accessTokens[at] = time.Now().Add(lifetime)
	resp := map[string]any{"access_token": at, "token_type": "Bearer"}
	if s.expiresIn != 0 {
		resp["expires_in"] = s.expiresIn
	}
	if scope != "" {
		resp["scope"] = scope
	}
	for k, v := range s.extraFields {
		resp[k] = v
	}
	return resp
}

func (s *Server) newRefreshToken(client string) string {
	rt := "rt-" + randomString(16)
	s.refreshTokens[rt] = true
	s.issuedTo[rt] = client
	s.remember(rt)
	return rt
}

func (s *Server) write(w http.ResponseWriter, resp map[string]any) {
	w.Header().Set("Cache-Control", "no-store")
	if s.formEncoding {
		form := url.Values{}
		for k, v := range resp {
			b, _ := json.Marshal(v)
			form.Set(k, strings.Trim(string(b), `"`))
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.Write([]byte(form.Encode()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
