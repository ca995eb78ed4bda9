// SPDX-License-Identifier: MPL-2.0

package connect

// The base layer's entries: what the store keeps, and the rules of a
// connection entry that every layer reads.

// sameClient reports whether a and b have the same client of their own
// (or both none).
func sameClient(a, b *connectionEntry) bool {
	return a.Credentials.ClientID == b.Credentials.ClientID && a.Credentials.ClientSecret == b.Credentials.ClientSecret
}

// hasOwnClient reports whether c brings its own OAuth client: only
// OAUTH2_CC connections may, and one that has none uses the integration's.
// c may be nil.
func (c *connectionEntry) hasOwnClient() bool {
	return c != nil && c.AuthMode == authModeOAuth2CC && c.Credentials.ClientID != ""
}
