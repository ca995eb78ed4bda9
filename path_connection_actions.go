// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathConnectionActions are the connection sub-paths that are not documents:
// raw, which adds the long-lived secrets to a read, and refresh.
func pathConnectionActions(b *backend) []*framework.Path {
	fields := connectionPathFields()
	return []*framework.Path{
		{
			Pattern: connectionPattern + "/raw",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "connection-raw",
			},
			Fields:          fields,
			Operations:      onlyOperation(logical.ReadOperation, b.pathConnectionRawRead, "read", connectionResponseFields(true)),
			HelpSynopsis:    "Read a connection with its refresh token and the provider's raw token response.",
			HelpDescription: pathConnectionRawHelp,
		},
		{
			Pattern: connectionPattern + "/refresh",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "connection",
			},
			Fields: fields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: forwardedOperation(b.pathConnectionRefresh, "refresh", okResponse("The refreshed connection.", connectionResponseFields(false))),
			},
			HelpSynopsis:    "Refresh a connection's OAuth token now.",
			HelpDescription: pathConnectionRefreshHelp,
		},
	}
}

func (b *backend) pathConnectionRawRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.respondWithConnection(ctx, req, d, true)
}

func (b *backend) pathConnectionRefresh(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	c, warnings, err := b.refresher.refreshConnection(ctx, req.Storage, integration, id, triggerForced)
	if err != nil {
		return httpError(err)
	}
	return b.connectionAnswer(ctx, req.Storage, c, false, warnings)
}

const pathConnectionRawHelp = `
Returns everything a plain read returns, plus the long-lived secrets:
refresh_token and raw_token_response (the provider's last token response as
it sent it). Grant this path only to what must handle refresh tokens itself;
applications need only connections/<integration>/<connection_id>.
`

const pathConnectionRefreshHelp = `
Refreshes an OAUTH2 or OAUTH2_CC connection's token now, whatever its expiry,
and returns the connection as a read does. A provider that refuses answers
HTTP 424 with its error code and description; the stored credentials are left
as they were.
`
