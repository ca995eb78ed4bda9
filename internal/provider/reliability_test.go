// SPDX-License-Identifier: MPL-2.0

// Shared test helper for tests that are rows of docs/reliability.md.

package provider

import "testing"

// reliabilityCase marks a test as a row of docs/reliability.md.
func reliabilityCase(t testing.TB, injected, expectation string) {
	t.Helper()
	t.Logf("reliability|%s|%s", injected, expectation)
}
