// SPDX-License-Identifier: MPL-2.0

// Command kvv2 serves HashiCorp's KV secrets engine
// (github.com/hashicorp/vault-plugin-secrets-kv) as an external plugin fixed
// at version 2, for the read benchmark's comparison. Vault passes the KV
// version option only to a mount of the plugin named "kv", which is always
// its builtin copy, so an external KV-v2 needs the version set here; the rest
// is the plugin's own code.
package main

import (
	"context"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
			if conf.BackendUUID == "" {
				// Not a mount: Vault's dev mode probing the plugin's
				// type, which KV-v2 would refuse without a UUID.
				return kv.Factory(ctx, conf)
			}
			cfg := map[string]string{}
			for k, v := range conf.Config {
				cfg[k] = v
			}
			cfg["version"] = "2"
			conf.Config = cfg
			return kv.Factory(ctx, conf)
		},
		TLSProviderFunc: api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	})
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
