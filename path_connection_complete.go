// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathConnectionComplete is the application's half of an authorization
// it completes (config's oauth_completion "application"): the callback
// exchanged the code and sent the browser back to the application with a
// one-time completion; the application, once it has checked that the
// browser is its user's, gives the completion and the browser binding it
// gave authorize, and the connection is stored.
func pathConnectionComplete(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: connectionPattern + "/complete",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "connection-authorization",
		},
		Fields: map[string]*framework.FieldSchema{
			"integration":   integrationNameField(),
			"connection_id": connectionIDField(),
			"completion": {
				Type:         framework.TypeString,
				Description:  "The connect_completion the callback added to return_url's query. One-time: spent by its first use with the right connection, succeeded or not.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
			"browser_binding": {
				Type:         framework.TypeString,
				Description:  "The browser_binding authorize was given, derived again from the application's session of the browser that came back. A wrong one spends the completion and revokes its tokens.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forwardedOperation(b.pathConnectionComplete, "complete", okResponse("The stored connection, as a read shows it.", connectionResponseFields(false))),
		},
		HelpSynopsis:    "Complete an authorization the application checked: store the connection the callback obtained tokens for.",
		HelpDescription: pathCompleteHelp,
	}}
}

func (b *backend) pathConnectionComplete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNamesWithBody(req, d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	completion, _ := d.Get("completion").(string)
	binding, _ := d.Get("browser_binding").(string)
	switch {
	case completion == "":
		return logical.ErrorResponse("completion is required: the connect_completion the callback added to return_url"), nil
	case binding == "":
		return logical.ErrorResponse("browser_binding is required: the one authorize was given"), nil
	}
	if fail := b.authorizer.completeHeld(ctx, req.Storage, integration, id, completion, binding); fail != nil {
		if fail.fault == faultRequest {
			return logical.ErrorResponse(fail.msg), nil
		}
		return nil, logical.CodedError(completionStatus[fail.fault], fail.msg)
	}
	return b.respondWithConnection(ctx, req, d, false)
}

const pathCompleteHelp = `
Where config's oauth_completion is "application" (the default), the callback
does not store the connection: it exchanges the code, keeps the tokens
(seal-wrapped, at most state_ttl) and sends the browser to authorize's
return_url with connect_completion=<one-time value> in its query. The
application checks that the browser that arrived belongs to the user who
started the authorization, then calls

    vault write connect/connections/github/org:123/complete \
        completion=<connect_completion> browser_binding=<as given to authorize>

which stores the connection as the callback would (tags, metadata,
connection config, events) and answers as a read of it. A completion of
another connection is refused and left as it is. A wrong browser_binding,
an expired or used completion: 4xx, nothing stored; a completion that was
found is spent whatever the outcome, and its tokens are revoked (RFC 7009,
where the integration has a revocation_url) unless they were stored. Tokens
whose completion never comes are revoked when they expire.
`
