// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// maxImportItems bounds one import request.
const maxImportItems = 1000

// pathConnectionImport is the batch write: up to maxImportItems connections
// of one integration per request, each written exactly as a single
// connection write would write it, each on its own.
func pathConnectionImport(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "import/" + segment("integration") + "$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "connections",
		},
		Fields: map[string]*framework.FieldSchema{
			"integration": integrationNameField(),
			"connections": {
				Type: framework.TypeSlice,
				Description: fmt.Sprintf("Up to %d objects, each a connection write: connection_id plus the fields of "+
					"connections/<integration>/<connection_id> (credentials by auth mode, metadata, connection_config).", maxImportItems),
				Required: true,
			},
			"overwrite": {
				Type:    framework.TypeBool,
				Default: false,
				Description: "Also update connections that exist already, as a connection write would. Without it an import " +
					"only creates: an item whose connection_id exists fails alone and leaves that connection as it is.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forwardedOperation(b.pathConnectionImport, "import", okResponse("OK", importResponseFields())),
		},
		HelpSynopsis: "Create many connections of one integration in one request (and update existing ones with overwrite=true).",
		HelpDescription: `
Each item of "connections" is written as "vault write connect/connections/<integration>/<connection_id>"
would write it, on its own: an item that fails (bad input, a schema it does not meet, a provider that
refuses a client-credentials token) changes nothing of that connection and does not stop the others.
The answer lists every item in order with its status: "created", "updated" or "failed" with "error".
A request that is itself wrong (no list, more than 1000 items, an id twice) is a 400 and writes nothing.

An import only creates: an item whose connection already exists fails ("already exists") and leaves
that connection as it is, unless the request sets overwrite=true. Import writes any connection of the
integration, tokens, config and APP installation included, so it is an operator's path: a customer's
policy never grants it.

    vault write connect/import/github @connections.json   # {"connections": [{"connection_id": "acme", "access_token": "...", ...}]}
    vault write connect/import/github overwrite=true @connections.json
`,
	}}
}

func importResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"results": typed(framework.TypeSlice, "Per item, in request order: connection_id, status (created, updated or failed) and, when failed, error (\"already exists\" for an existing connection without overwrite=true)."),
		"created": typed(framework.TypeInt, "How many connections were created."),
		"updated": typed(framework.TypeInt, "How many existing connections were updated (only with overwrite=true)."),
		"failed":  typed(framework.TypeInt, "How many items failed and changed nothing."),
	}
}

func (b *backend) pathConnectionImport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration := d.Get("integration").(string)
	if err := validateIntegrationName(integration); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	items, err := importItems(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	stored, in, err := integrationForWrites(ctx, req.Storage, integration)
	if err != nil {
		return respondError(err)
	}
	schema := connectionFields()
	overwrite := d.Get("overwrite").(bool)
	results, err := importAll(len(items), func(i int) importItem {
		return b.importOne(ctx, req.Storage, stored, in, schema, items[i], overwrite)
	}, itemFault)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: importSummary(results)}, nil
}

// importItems checks the request's list: objects, each with a valid and
// distinct connection_id, at most maxImportItems, each within the size of
// a single write.
func importItems(d *framework.FieldData) ([]map[string]any, error) {
	raw, ok := d.GetOk("connections")
	list, _ := raw.([]any)
	if !ok || len(list) == 0 {
		return nil, errors.New("connections is required: a list of connection objects")
	}
	if len(list) > maxImportItems {
		return nil, fmt.Errorf("connections has %d items; at most %d per request", len(list), maxImportItems)
	}
	items := make([]map[string]any, len(list))
	seen := make(map[string]int, len(list))
	for i, v := range list {
		item, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("connections[%d] is not an object", i)
		}
		id, _ := item["connection_id"].(string)
		if err := validateConnectionID(id); err != nil {
			return nil, fmt.Errorf("connections[%d]: %v", i, err)
		}
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("connections[%d] and connections[%d] are both %q: one write per connection per request", j, i, printable(id))
		}
		seen[id] = i
		if err := checkPayloadSize(item); err != nil {
			return nil, fmt.Errorf("connections[%d]: %v", i, err)
		}
		items[i] = item
	}
	return items, nil
}

// importOne writes one item through the connectionWriter; schema is the
// connection write's fields, and without overwrite an item whose
// connection exists fails. A field that does not parse is the item's
// fault, as a userError.
func (b *backend) importOne(ctx context.Context, s logical.Storage, stored, in *integrationEntry, schema map[string]*framework.FieldSchema, item map[string]any, overwrite bool) importItem {
	id := item["connection_id"].(string)
	input, err := importItemInput(item, schema)
	if err != nil {
		return importItem{id: id, err: badInput(err)}
	}
	input.CreateOnly = !overwrite
	_, created, err := b.writer.write(ctx, s, stored, in, id, input)
	return importItem{id: id, created: created, err: err}
}

// importItemInput is one item's fields as a connectionInput, each
// converted to its type by the single write's field schemas, as Vault
// converts a single write's body: an item is parsed as that write would
// be.
func importItemInput(item map[string]any, schema map[string]*framework.FieldSchema) (connectionInput, error) {
	raw := make(map[string]any, len(item))
	for k, v := range item {
		if k != "connection_id" && k != "integration" {
			raw[k] = v
		}
	}
	d := &framework.FieldData{Raw: raw, Schema: schema}
	if err := d.Validate(); err != nil {
		return connectionInput{}, err
	}
	return connectionInputOf(d)
}

// itemFault says whether err is one a single write would have answered
// with a 4xx or 424, and its message.
func itemFault(err error) (string, bool) {
	resp, herr := respondError(err)
	if resp != nil && resp.IsError() {
		return resp.Error().Error(), true
	}
	var coded logical.HTTPCodedError
	if errors.As(herr, &coded) && coded.Code() < 500 {
		return coded.Error(), true
	}
	return "", false
}

// importSummary is the import answer.
func importSummary(results []importResult) map[string]any {
	counts := map[string]int{}
	list := make([]any, len(results))
	for i, r := range results {
		counts[r.Status]++
		item := map[string]any{"connection_id": r.ConnectionID, "status": r.Status}
		if r.Error != "" {
			item["error"] = r.Error
		}
		list[i] = item
	}
	return map[string]any{"results": list, "created": counts["created"], "updated": counts["updated"], "failed": counts["failed"]}
}
