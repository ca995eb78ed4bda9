// SPDX-License-Identifier: MPL-2.0

package oauthtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
)

// API is a provider's REST API on loopback, for the proxy's tests: it
// records every request it receives (host, method, path as sent, query,
// headers, body) before anything else, and answers from the handlers set
// with Handle, else with a JSON echo of the request without its headers.
type API struct {
	*httptest.Server

	mu       sync.Mutex
	requests []APIRequest
	mux      *http.ServeMux
	routes   map[string]bool
}

// APIRequest is one request an API received.
type APIRequest struct {
	Host, Method string
	// Path is the path as it came on the wire (escaped), RawQuery the
	// query string.
	Path, RawQuery string
	Header         http.Header
	Body           []byte
}

// NewAPI starts an API on 127.0.0.1.
func NewAPI() *API { return NewAPIOn("127.0.0.1") }

// NewAPIOn starts an API on the given loopback address, e.g. 127.0.0.2 for
// a decoy that a test checks saw nothing (on Linux all of 127/8 is
// loopback). It panics when the address cannot be listened on.
func NewAPIOn(host string) *API {
	a := &API{mux: http.NewServeMux(), routes: map[string]bool{}}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		panic("oauthtest: listening on " + host + ": " + err.Error())
	}
	a.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(a.serve)}}
	a.Start()
	return a
}

// Handle answers requests that match pattern (a ServeMux pattern, e.g.
// "GET /v1/items/{id}") with h.
func (a *API) Handle(pattern string, h http.HandlerFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.routes[pattern] {
		return
	}
	a.routes[pattern] = true
	a.mux.HandleFunc(pattern, h)
}

// Requests returns the requests received so far.
func (a *API) Requests() []APIRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]APIRequest(nil), a.requests...)
}

// Reset forgets the requests received so far.
func (a *API) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = nil
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	a.mu.Lock()
	a.requests = append(a.requests, APIRequest{
		Host: r.Host, Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body,
	})
	mux := a.mux
	a.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if h, pattern := mux.Handler(r); pattern != "" {
		h.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.EscapedPath(), "query": r.URL.RawQuery, "body": string(body)})
}
