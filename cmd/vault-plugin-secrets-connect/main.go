// SPDX-License-Identifier: MPL-2.0

// Command vault-plugin-secrets-connect serves the connect secrets engine as
// a Vault plugin.
package main

import (
	"fmt"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	connect "github.com/connect-vault/vault-plugin-secrets-connect"
)

func main() {
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	// -version prints what the binary reports to Vault, the value
	// `vault plugin register -version` must be given.
	printVersion := flags.Bool("version", false, "print the plugin's version and exit")
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if *printVersion {
		fmt.Println(connect.Version())
		return
	}

	// The TLS provider keeps the plugin working with Vaults that predate
	// plugin AutoMTLS.
	tlsProviderFunc := api.VaultPluginTLSProvider(apiClientMeta.GetTLSConfig())
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: connect.Factory,
		TLSProviderFunc:    tlsProviderFunc,
	})
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
