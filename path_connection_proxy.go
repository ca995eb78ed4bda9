// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// proxyPattern matches connections/<integration>/<id>/proxy/<provider
// path>: the provider path is the rest, '/' included, so that Vault's
// policy globs on it are the proxy's path rules. Anchored by the
// framework, it overlaps no other connection sub-path (raw, refresh,
// metadata, config, authorize, …), which end after their name. The rest
// matches line breaks too (framework.MatchAllRegex's '.' does not), so that
// a path holding one reaches the handler and its 400.
var proxyPattern = connectionPattern + `/proxy/(?P<path>[\s\S]*)`

// pathConnectionProxy is the proxy's path: each Vault operation is one
// upstream method (read GET, update POST or PUT, patch PATCH, delete
// DELETE), so a policy's capabilities are its method rules.
func pathConnectionProxy(b *backend) []*framework.Path {
	fields := connectionPathFields()
	fields["path"] = &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "The provider path under the connection's base_url, e.g. repos/acme/app/issues: sent exactly as Vault matched it.",
		Required:    true,
	}
	for name, f := range proxyEnvelopeFields() {
		fields[name] = f
	}
	responses := okResponse("The provider's answer.", proxyResponseFields())
	responses[http.StatusNoContent] = []framework.Response{{Description: "The provider answered 204 and format=raw was asked."}}
	op := func(cb framework.OperationFunc, verb string, forward bool) framework.OperationHandler {
		return &framework.PathOperation{
			Callback:                    cb,
			DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: verb},
			Responses:                   responses,
			ForwardPerformanceStandby:   forward,
			ForwardPerformanceSecondary: forward,
		}
	}
	return []*framework.Path{{
		Pattern: proxyPattern,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "connection-proxy",
		},
		Fields: fields,
		// A GET's and a DELETE's query parameters are the provider's.
		TakesArbitraryInput: true,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   op(b.pathConnectionProxy, "proxy-get", false),
			logical.UpdateOperation: op(b.pathConnectionProxy, "proxy-post", false),
			logical.PatchOperation:  op(b.pathConnectionProxy, "proxy-patch", false),
			logical.DeleteOperation: op(b.pathConnectionProxy, "proxy-delete", false),
		},
		HelpSynopsis:    "Call the provider's API with the connection's credential, which stays in Vault.",
		HelpDescription: pathConnectionProxyHelp,
	}}
}

// proxyEnvelopeFields are what a write's JSON body holds besides the
// provider's body itself (json, which takes any JSON value and so has no
// field type).
func proxyEnvelopeFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"body":         str("Writes: the request body as text (instead of json or body_base64)."),
		"body_base64":  str("Writes: the request body as base64 bytes (instead of json or body)."),
		"content_type": str("Writes: the body's Content-Type; application/json for json, text/plain; charset=utf-8 for body, application/octet-stream for body_base64 unless given."),
		"query":        typed(framework.TypeMap, "Writes: the provider's query parameters, an object of strings (or lists of strings)."),
		"headers":      typed(framework.TypeMap, "Writes: request headers, an object of strings. Only Accept, Content-Type, If-*, Idempotency-Key and the integration's proxy_headers pass; Authorization, Host, Cookie, Proxy-*, X-Forwarded-*, X-Vault-*, hop-by-hop headers and the integration's credential headers are refused."),
		"method":       str("Updates: POST (the default) or PUT."),
		"format":       str("raw: answer with the provider's status, content type and body as the HTTP response itself (headers only those the mount's allowed_response_headers lists; a content type a browser could run as a page, HTML, SVG, XML, script, PDF or unknown, becomes application/octet-stream, with X-Content-Type-Options: nosniff). Otherwise a JSON answer with status, headers and json, body or body_base64."),
		"proxy_query":  str("An encoded query string passed on as is, for parameters Vault keeps for itself (help, list) or that name a field of this path (format, path, …)."),
	}
}

// proxyResponseFields are the JSON answer's fields.
func proxyResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"status":      typed(framework.TypeInt, "The provider's HTTP status."),
		"headers":     typed(framework.TypeMap, "The provider's headers (values joined with ', '), without hop-by-hop headers, Set-Cookie, Access-Control-*, Content-Length and Transfer-Encoding."),
		"json":        typed(framework.TypeMap, "The body, when the provider sent JSON (any JSON value)."),
		"body":        str("The body, when it is UTF-8 text and not JSON."),
		"body_base64": str("The body in base64, when it is neither JSON nor UTF-8 text."),
	}
}

// reservedProxyQuery are a GET's or DELETE's parameters the proxy keeps:
// the rest are the provider's.
var reservedProxyQuery = []string{"format", "proxy_query"}

func (b *backend) pathConnectionProxy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	call, raw, err := proxyCallOf(req, d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	resp, err := b.proxier.call(ctx, req.Storage, call)
	if err != nil {
		return respondError(err)
	}
	if raw {
		return rawProxyResponse(resp), nil
	}
	return &logical.Response{Data: proxyResponseData(resp)}, nil
}

// proxyCallOf reads a proxied call from a Vault request; raw says whether
// format=raw was asked.
func proxyCallOf(req *logical.Request, d *framework.FieldData) (proxyCall, bool, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return proxyCall{}, false, err
	}
	call := proxyCall{Integration: integration, ConnectionID: id, Path: d.Get("path").(string), Header: http.Header{}}
	for name, values := range req.Headers { // those the mount passes through
		for _, v := range values {
			call.Header.Add(name, v)
		}
	}
	format, _ := req.Data["format"].(string)
	if format != "" && format != "raw" && format != "json" {
		return proxyCall{}, false, fmt.Errorf("format must be raw or json")
	}
	extra, _ := req.Data["proxy_query"].(string)
	if _, err := url.ParseQuery(extra); err != nil || strings.ContainsFunc(extra, func(r rune) bool { return r <= ' ' || r == '#' || r == 0x7f }) {
		return proxyCall{}, false, fmt.Errorf("proxy_query must be an encoded query string")
	}
	switch req.Operation {
	case logical.ReadOperation, logical.DeleteOperation:
		call.Method = http.MethodGet
		if req.Operation == logical.DeleteOperation {
			call.Method = http.MethodDelete
		}
		q, err := queryOf(req.Data, reservedProxyQuery)
		if err != nil {
			return proxyCall{}, false, err
		}
		call.Query = joinQuery(q.Encode(), extra)
	default:
		if err := readProxyEnvelope(req, &call, extra); err != nil {
			return proxyCall{}, false, err
		}
	}
	return call, format == "raw", nil
}

// readProxyEnvelope reads a write's JSON envelope into call.
func readProxyEnvelope(req *logical.Request, call *proxyCall, extra string) error {
	call.Method = http.MethodPatch
	if req.Operation == logical.UpdateOperation {
		call.Method = http.MethodPost
		if m, _ := req.Data["method"].(string); m != "" {
			if m = strings.ToUpper(m); m != http.MethodPost && m != http.MethodPut {
				return fmt.Errorf("method must be POST or PUT")
			}
			call.Method = m
		}
	} else if _, ok := req.Data["method"]; ok {
		return fmt.Errorf("method is for updates; a patch is a PATCH")
	}
	body, contentType, err := envelopeBody(req.Data)
	if err != nil {
		return err
	}
	call.Body = body
	if q, ok := req.Data["query"]; ok {
		obj, isObj := q.(map[string]any)
		if !isObj {
			return fmt.Errorf("query must be an object")
		}
		values, err := queryOf(obj, nil)
		if err != nil {
			return err
		}
		call.Query = values.Encode()
	}
	call.Query = joinQuery(call.Query, extra)
	if h, ok := req.Data["headers"]; ok {
		obj, isObj := h.(map[string]any)
		if !isObj {
			return fmt.Errorf("headers must be an object of strings")
		}
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			v, isStr := obj[name].(string)
			if !isStr {
				return fmt.Errorf("headers.%s must be a string", printable(name))
			}
			call.Header.Add(name, v)
		}
	}
	if contentType != "" && call.Header.Get("Content-Type") == "" {
		call.Header.Set("Content-Type", contentType)
	}
	return nil
}

// envelopeBody is a write's body: json, body or body_base64 (at most one),
// with the Content-Type it implies unless content_type says otherwise.
func envelopeBody(data map[string]any) ([]byte, string, error) {
	given := 0
	for _, k := range []string{"json", "body", "body_base64"} {
		if _, ok := data[k]; ok {
			given++
		}
	}
	if given > 1 {
		return nil, "", fmt.Errorf("give one of json, body and body_base64")
	}
	ct, _ := data["content_type"].(string)
	if strings.ContainsAny(ct, "\r\n\x00") {
		return nil, "", fmt.Errorf("content_type holds a line break or NUL")
	}
	pick := func(def string) string {
		if ct != "" {
			return ct
		}
		return def
	}
	if v, ok := data["json"]; ok {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, "", fmt.Errorf("json could not be encoded")
		}
		return b, pick("application/json"), nil
	}
	if v, ok := data["body"]; ok {
		s, isStr := v.(string)
		if !isStr {
			return nil, "", fmt.Errorf("body must be a string")
		}
		return []byte(s), pick("text/plain; charset=utf-8"), nil
	}
	if v, ok := data["body_base64"]; ok {
		s, _ := v.(string)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, "", fmt.Errorf("body_base64 is not base64")
		}
		return b, pick("application/octet-stream"), nil
	}
	return nil, ct, nil
}

// queryOf turns request data (strings, or lists of strings) into query
// values, leaving out the reserved names.
func queryOf(data map[string]any, reserved []string) (url.Values, error) {
	q := url.Values{}
	for k, v := range data {
		if slices.Contains(reserved, k) {
			continue
		}
		switch v := v.(type) {
		case string:
			q.Add(k, v)
		case []string:
			q[k] = append(q[k], v...)
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("query parameter %s must be strings", printable(k))
				}
				q.Add(k, s)
			}
		default:
			q.Add(k, fmt.Sprint(v))
		}
	}
	return q, nil
}

// joinQuery joins two encoded query strings.
func joinQuery(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "&" + b
}

// proxyResponseData is the JSON answer: status, headers and the body as
// json, text or base64.
func proxyResponseData(resp *provider.ProxyResponse) map[string]any {
	headers := make(map[string]any, len(resp.Header))
	for name, values := range resp.Header {
		headers[name] = strings.Join(values, ", ")
	}
	data := map[string]any{"status": resp.Status, "headers": headers}
	switch {
	case len(resp.Body) == 0:
	case isJSONType(resp.Header.Get("Content-Type")) && json.Valid(resp.Body):
		data["json"] = jsonAnswerValue(resp.Body)
	case utf8.Valid(resp.Body) && !strings.ContainsRune(string(resp.Body), 0):
		data["body"] = string(resp.Body)
	default:
		data["body_base64"] = base64.StdEncoding.EncodeToString(resp.Body)
	}
	return data
}

// jsonAnswerValue is a valid JSON body as the json field carries it: the
// bytes themselves when they are UTF-8, which the response's encoding for
// Vault embeds as they are (Vault decodes them as it would the decoded
// value encoded again), so a large answer is not decoded into a tree of
// maps only to be encoded again; else the decoded value, whose strings
// hold U+FFFD where the body held invalid bytes (the gRPC answer to Vault
// must be UTF-8).
func jsonAnswerValue(body []byte) any {
	if utf8.Valid(body) {
		return jsonText(body)
	}
	return decodeJSONValue(body)
}

// jsonText is a valid UTF-8 JSON text carried as a value of response data:
// encoded as itself, printed as its text.
type jsonText []byte

// MarshalJSON returns the text, which encoding/json checks and compacts.
func (t jsonText) MarshalJSON() ([]byte, error) { return t, nil }

func (t jsonText) String() string { return string(t) }

// decodeJSONValue decodes a valid JSON body, numbers kept as written.
func decodeJSONValue(body []byte) any {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return v
}

// isJSONType reports whether a Content-Type is JSON (application/json or
// any +json).
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// rawProxyResponse answers with the provider's status, content type (made
// passive) and body as the HTTP response, with nosniff; Vault passes on
// only the headers the mount's allowed_response_headers lists.
func rawProxyResponse(resp *provider.ProxyResponse) *logical.Response {
	body := resp.Body
	if body == nil {
		body = []byte{} // Vault reads a missing body as an error
	}
	data := map[string]any{logical.HTTPStatusCode: resp.Status, logical.HTTPRawBody: body}
	ct := passiveContentType(resp.Header.Get("Content-Type"))
	if ct == "" && len(resp.Body) > 0 {
		ct = "application/octet-stream"
	}
	if ct != "" {
		data[logical.HTTPContentType] = ct
	}
	headers := resp.Header.Clone()
	headers.Del("Content-Type")
	// Vault passes it on when the mount's allowed_response_headers lists it.
	headers.Set("X-Content-Type-Options", "nosniff")
	return &logical.Response{Data: data, Headers: headers}
}

// passiveContentType is a provider's Content-Type as a raw answer may
// carry it from Vault's origin, which also serves the connect page and its
// cookies: types a browser only shows or hands over (JSON, plain text,
// CSV, raster images, audio, video, archives, bytes) pass as the provider
// sent them; any other (HTML, SVG, XML, XHTML, JavaScript, PDF, unknown
// or malformed) becomes application/octet-stream, the same bytes that no
// browser runs as a page.
func passiveContentType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (passiveMediaTypes[mt] || isJSONType(ct) ||
		strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")) {
		return ct
	}
	return "application/octet-stream"
}

// passiveMediaTypes are the media types, besides JSON, audio and video,
// that a raw answer passes as sent.
var passiveMediaTypes = map[string]bool{
	"text/plain": true, "text/csv": true, "application/octet-stream": true,
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/avif": true, "image/bmp": true,
	"application/zip": true, "application/gzip": true,
}

const pathConnectionProxyHelp = `
Calls the provider's API with the connection's credential, which never
leaves Vault. The provider path is appended to the connection's base_url
(its integration's api_base_url, under the egress rule); the Vault
operation is the method:

  read (GET)          GET     query parameters passed on
  update (POST, PUT)  POST    or method=PUT in the body
  patch (PATCH)       PATCH
  delete (DELETE)     DELETE  query parameters passed on

A write's JSON body is an envelope: json (any JSON value) or body (text) or
body_base64 (bytes), content_type, query (object), headers (object),
method. help, list, format and a path's own field names are Vault's or the
proxy's; pass such provider parameters in proxy_query (an encoded query
string).

The integration's proxy_paths (globs under the base, '+' one segment, '*'
at the end any rest) and proxy_methods (default GET) decide what may be
called at all: outside them the answer is 403 and nothing is sent. A Vault
policy on this path narrows it further per customer, method and path:

    path "connect/connections/github/+/proxy/repos/*" { capabilities = ["read"] }

The answer is status, headers and json, body or body_base64; with
format=raw, the provider's status, content type and bytes. A 401 renews the
token once and retries once; GET and DELETE (and writes with an
Idempotency-Key) are retried on 429, 502, 503 and 504 up to proxy_retries
times, honouring Retry-After up to proxy_retry_after_max. Errors of the
proxy itself are Vault errors: 400 (a bad path, header or body), 403
(outside the rules), 404, 502 (unreachable, or an answer over
proxy_max_response), 504 (over proxy_timeout). See docs/proxy.md.
`
