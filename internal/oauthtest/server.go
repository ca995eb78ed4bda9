// Package oauthtest is a small, real OAuth 2.0 authorization server for the
// tests: it listens on loopback, speaks RFC 6749 over HTTP, keeps its own
// token state, and can be told to fail the way providers do.
package oauthtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
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

	expiresIn    int
	rotate       bool
	omitRefresh  bool
	failCode     string
	failStatus   int
	delay        time.Duration
	authStyle    string
	extraFields  map[string]any
	formEncoding bool
}

// New starts a server on loopback. Call Close when done.
func New() *Server {
	s := &Server{
		ClientID:      "client-" + randomString(4),
		ClientSecret:  "client-secret-" + randomString(12),
		refreshTokens: map[string]bool{},
		accessTokens:  map[string]time.Time{},
		expiresIn:     3600,
		rotate:        true,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	s.Server = httptest.NewServer(mux)
	return s
}

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// AuthURL is an authorization endpoint address (not served yet).
func (s *Server) AuthURL() string { return s.URL + "/authorize" }

// IssueRefreshToken mints a valid refresh token, as if a user had consented
// somewhere else; tests import it into a connection.
func (s *Server) IssueRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := "rt-" + randomString(16)
	s.refreshTokens[rt] = true
	return rt
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
	return s.refreshTokens[rt]
}

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
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body is not a form")
		return
	}
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	time.Sleep(delay)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.lastForm = r.PostForm

	style, ok := s.authenticate(r)
	s.lastAuthStyle = style
	if !ok {
		writeError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if s.failCode != "" {
		writeError(w, s.failStatus, s.failCode, "the server was told to fail")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if !s.refreshTokens[rt] {
			writeError(w, http.StatusBadRequest, "invalid_grant", "refresh token is invalid, expired or revoked")
			return
		}
		resp := s.issue(r.PostForm.Get("scope"))
		switch {
		case s.omitRefresh:
		case s.rotate:
			delete(s.refreshTokens, rt)
			resp["refresh_token"] = s.newRefreshToken()
		default:
			resp["refresh_token"] = rt
		}
		s.write(w, resp)
	case "client_credentials":
		s.write(w, s.issue(r.PostForm.Get("scope")))
	default:
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type is not supported")
	}
}

// authenticate checks the client credentials, in the header or the form.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	id, secret, inHeader := r.BasicAuth()
	style := "header"
	if inHeader {
		// RFC 6749 2.3.1: the header values are form-encoded.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		style = "params"
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if s.authStyle != "" && s.authStyle != style {
		return style, false
	}
	return style, id == s.ClientID && secret == s.ClientSecret
}

func (s *Server) issue(scope string) map[string]any {
	at := "at-" + randomString(16)
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

func (s *Server) newRefreshToken() string {
	rt := "rt-" + randomString(16)
	s.refreshTokens[rt] = true
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
