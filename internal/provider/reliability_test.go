// SPDX-License-Identifier: MPL-2.0

package provider

import "testing"

// reliabilityCase marks a test as a row of docs/reliability.md.
func reliabilityCase(t testing.TB, injected, expectation string) {
	t.Helper()
	t.Logf("reliability|%s|%s", injected, expectation)
}
