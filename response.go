// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/connectpage"
)

// httpError answers an error from the store or the refresh engine with the
// HTTP status it deserves: the caller's mistakes are 4xx, a full quota 429,
// the provider's failures 424, anything else (storage) stays an internal
// error.
func httpError(err error) (*logical.Response, error) {
	kind := err
	var ee *engineError
	if errors.As(err, &ee) {
		kind = ee.kind // the kind decides, not the cause it wraps
	}
	var hasConns *errHasConnections
	var pendingLimit *pendingLimitError
	switch {
	case errors.As(kind, &pendingLimit):
		// 429, not 400: the request is right and succeeds once pending
		// authorizations complete or expire. Vault's own rate limit
		// quotas answer 429 too, and clients know to retry it later.
		return nil, logical.CodedError(http.StatusTooManyRequests, err.Error())
	case errors.Is(kind, errConnectionNotFound):
		return nil, logical.CodedError(http.StatusNotFound, err.Error())
	case errors.Is(kind, errBadConnectionConfig), errors.Is(kind, errNotRefreshable), errors.Is(kind, errNoTokens),
		errors.Is(kind, errIntegrationGone), errors.As(kind, &hasConns):
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	case errors.Is(kind, errProviderRefused), errors.Is(kind, errProviderUnreachable), errors.Is(kind, errExpiredUnrefreshable):
		return nil, logical.CodedError(http.StatusFailedDependency, err.Error())
	case errors.Is(kind, errIntegrationChanged):
		// 409: a retry, against the integration as it is now, succeeds.
		return nil, logical.CodedError(http.StatusConflict, err.Error())
	case errors.Is(kind, errWALPending):
		// 503: the request is right and succeeds once the start's replay
		// has stored the connection's tokens.
		return nil, logical.CodedError(http.StatusServiceUnavailable, err.Error())
	case errors.Is(kind, errProxyForbidden):
		return nil, logical.CodedError(http.StatusForbidden, err.Error())
	case errors.Is(kind, errProxyUpstream):
		return nil, logical.CodedError(http.StatusBadGateway, err.Error())
	case errors.Is(kind, errProxyTimeout):
		return nil, logical.CodedError(http.StatusGatewayTimeout, err.Error())
	}
	return nil, err
}

// respondError is httpError for handlers that also meet userErrors.
func respondError(err error) (*logical.Response, error) {
	var ue *userError
	if errors.As(err, &ue) {
		return logical.ErrorResponse(ue.msg), nil
	}
	return httpError(err)
}

// Response schemas: every operation declares what it answers, so that the
// OpenAPI document Vault serves describes each response field, and the
// tests check every real response against its schema (as HashiCorp's KV
// plugin does). Each path file owns its own; these build them.
//
// okResponse is an operation's successful answer: 200 with fields.
func okResponse(description string, fields map[string]*framework.FieldSchema) map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusOK: {{Description: description, Fields: fields}}}
}

// noContentResponse is the answer of a delete: 204, or 200 with warnings.
func noContentResponse() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusNoContent: {{Description: "Deleted."}},
		http.StatusOK:        {{Description: "Deleted, with warnings (for example a revocation that failed)."}},
	}
}

func str(description string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: description}
}

func typed(t framework.FieldType, description string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: t, Description: description}
}

// listResponseFields are the fields of a LIST answer.
func listResponseFields(what string) map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"keys":     typed(framework.TypeStringSlice, "The "+what+", sorted."),
		"key_info": typed(framework.TypeMap, "Per key, a summary without secrets."),
	}
}

// pageResponse is the answer that serves a page (internal/connectpage)
// as it was rendered: raw body, status, content type, cache headers, and
// the headers it adds (Vault passes those only where the mount allows
// them, see tuneCommand).
func pageResponse(p connectpage.Page) *logical.Response {
	resp := &logical.Response{Data: map[string]any{
		logical.HTTPContentType:        p.ContentType,
		logical.HTTPRawBody:            p.Body,
		logical.HTTPStatusCode:         p.Status,
		logical.HTTPCacheControlHeader: p.CacheControl,
		logical.HTTPPragmaHeader:       p.Pragma,
	}}
	if len(p.Headers) > 0 {
		resp.Headers = p.Headers
	}
	return resp
}

// existence is an existence check's answer from a lookup's: an entry of a
// newer storage format exists, and the handler's own read refuses it with
// the error that says so (Vault answers a failed existence check with
// "internal error" alone).
func existence(found bool, err error) (bool, error) {
	if errors.Is(err, errNewerFormat) {
		return true, nil
	}
	return found, err
}
