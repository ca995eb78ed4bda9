// SPDX-License-Identifier: MPL-2.0

// Command ceiling is the read benchmark's ceiling: an external plugin that
// does nothing but answer. A write of `answer` keeps its data in memory;
// a read of any other path answers with that data, the same fields a
// connection read gives, so that the bytes through Vault are the same and
// the difference in throughput is the connect plugin's own share of a read
// (routing, its cache, rendering, building the response).
package main

import (
	"context"
	"os"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}

// ceiling holds the answer every read gives.
type ceiling struct {
	mu     sync.RWMutex
	answer map[string]any
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	c := &ceiling{}
	b := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{
			{
				Pattern: "answer",
				Fields:  map[string]*framework.FieldSchema{"data": {Type: framework.TypeMap}},
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.UpdateOperation: &framework.PathOperation{Callback: c.set},
				},
			},
			{
				Pattern: ".*",
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.ReadOperation: &framework.PathOperation{Callback: c.read},
				},
			},
		},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *ceiling) set(_ context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answer = d.Get("data").(map[string]any)
	return nil, nil
}

// read answers with a fresh map of the kept data, as a plugin building its
// response would.
func (c *ceiling) read(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	data := make(map[string]any, len(c.answer))
	for k, v := range c.answer {
		data[k] = v
	}
	return &logical.Response{Data: data}, nil
}
