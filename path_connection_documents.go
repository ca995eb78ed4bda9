// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// connectionDocument is a free-form JSON object kept with a connection and
// edited on its own sub-path: the application's metadata, and the
// per-connection configuration that provider URLs are templated with.
//
// The request body is the document itself, so
//
//	vault write connect/connections/github/acme/metadata plan=pro region=eu
//	vault patch connect/connections/github/acme/metadata plan=enterprise
//	vault read -field=plan connect/connections/github/acme/metadata
//
// all work without wrapping the object in a field.
type connectionDocument struct {
	subPath string // "metadata" or "config"
	field   string // the connection field it is shown as (documentOf)
	help    string
}

var connectionDocuments = []connectionDocument{
	{
		subPath: "metadata",
		field:   "metadata",
		help:    "Metadata is any JSON object the application keeps with the connection: a customer name, a plan, ids at the provider.",
	},
	{
		subPath: "config",
		field:   "connection_config",
		help:    "Connection configuration holds the per-customer values a provider needs, such as the subdomain its URLs are built with. Edits are checked against the integration's connection_config_schema.",
	},
}

// documentResponse is any JSON object: the document's own keys are the
// response's fields, so they cannot be listed.
var documentResponse = okResponse("The document, its keys at the top level.", nil)

func pathConnectionDocuments(b *backend) []*framework.Path {
	var paths []*framework.Path
	for _, doc := range connectionDocuments {
		doc := doc
		paths = append(paths, &framework.Path{
			Pattern: connectionPattern + "/" + doc.subPath,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "connection-" + doc.subPath,
			},
			Fields:              connectionPathFields(),
			TakesArbitraryInput: true,
			// The document exists with its connection; writing it never
			// creates one, so policies need "update", not "create".
			ExistenceCheck: b.connectionExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   localOperation(b.documentRead(doc), "read", documentResponse),
				logical.CreateOperation: forwardedOperation(b.documentWrite(doc, replaceDocument), "write", documentResponse),
				logical.UpdateOperation: forwardedOperation(b.documentWrite(doc, replaceDocument), "write", documentResponse),
				logical.PatchOperation:  forwardedOperation(b.documentWrite(doc, mergePatchDocument), "patch", documentResponse),
			},
			HelpSynopsis:    fmt.Sprintf("Read, replace or patch a connection's %s.", doc.field),
			HelpDescription: doc.help + pathConnectionDocumentHelp,
		})
	}
	return paths
}

func (b *backend) documentRead(doc connectionDocument) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		integration, id, err := connectionNames(d)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		c, err := b.store.Get(ctx, req.Storage, integration, id)
		if err != nil || c == nil {
			return nil, err
		}
		return &logical.Response{Data: nonNilObject(*documentOf(c, doc.field))}, nil
	}
}

func (b *backend) documentWrite(doc connectionDocument, edit documentEdit) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		integration, id, err := connectionNamesWithBody(req, d)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		body, err := jsonObject(doc.field, req.Data)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		c, err := b.writer.editDocument(ctx, req.Storage, integration, id, doc.field, edit, body)
		if err != nil {
			return respondError(err)
		}
		return &logical.Response{Data: nonNilObject(*documentOf(c, doc.field))}, nil
	}
}

const pathConnectionDocumentHelp = `

The request body is the whole JSON object: write replaces it, patch applies
an RFC 7386 JSON merge patch (keys set to null are removed), read returns it
with its keys at the top level.

    vault write connect/connections/<integration>/<id>/metadata plan=pro
    vault patch connect/connections/<integration>/<id>/metadata plan=enterprise
    vault read -field=plan connect/connections/<integration>/<id>/metadata

Writing to a connection that does not exist is a 404: create the connection
first.
`
