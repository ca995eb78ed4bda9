// SPDX-License-Identifier: MPL-2.0

// Package catalog is what the engine knows of providers before any
// request: the embedded catalog of built-in providers, the endpoint
// settings that providers and integrations share with their merge and
// validation rules, the value schemas of connection configs and
// credentials, and the auth modes with their credential fields. It uses
// nothing of Vault's SDK, so that these rules can be read and tested
// without a backend.
package catalog
