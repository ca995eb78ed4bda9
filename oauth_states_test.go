// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A callback whose index delete storage refuses once does not keep a place
// under max_pending_authorizations for good: after the sweep and a restart,
// another connection may still start an authorization.
func TestFailedCallbackLeaksNoPendingPlace(t *testing.T) {
	e, _ := authEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failDeletePrefix: stateIndexPrefix}
	e.storage = flaky
	now, advance := fixedClock(time.Now())
	e.b.now = now
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_pending_authorizations": 1})
	q := consent(t, e, "connections/github/victim1/authorize", nil)
	flaky.failDeletes.Store(1)
	if status, _, _ := callback(e, q); status/100 == 2 {
		t.Fatalf("callback succeeded (%d) though storage refused a delete", status)
	}
	advance(48 * time.Hour)
	for range 3 {
		e.tick()
	}
	restarted := restartOn(t, flaky)
	restarted.b.now = now
	if _, status := restarted.do(logical.UpdateOperation, "connections/github/victim2/authorize", nil); status == 429 {
		t.Fatal("after the sweep and a restart another connection's authorize is refused: the place leaked")
	}
}
