// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// TestOwedEventsBeyondTheBoundAreCountedAndLogged: events owed beyond
// maxOwedEvents are dropped, oldest first; each drop is logged (naming the
// connection, no secret) and counted, and status shows the owed events and
// the drops.
func TestOwedEventsBeyondTheBoundAreCountedAndLogged(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	events.setFail(errors.New("outbox unavailable"))
	for i := range 3 {
		e.mustFail(logical.CreateOperation, fmt.Sprintf("connections/stripe/first%d", i), map[string]any{"api_key": "sk_secret_first"}, http.StatusInternalServerError)
	}
	st := e.mustDo(logical.ReadOperation, "status", nil)
	if st["events_owed"] != 3 || st["events_owed_dropped"] != int64(0) {
		t.Fatalf("status before the bound: events_owed=%v events_owed_dropped=%v", st["events_owed"], st["events_owed_dropped"])
	}
	// Filling the bound through requests would take ten thousand of them.
	filler := &connectionEntry{Integration: "stripe", ConnectionID: "filler"}
	for range maxOwedEvents - 1 {
		e.b.store.owe(filler, []pendingEvent{{typ: eventConnectionUpdated}})
	}
	st = e.mustDo(logical.ReadOperation, "status", nil)
	if st["events_owed"] != maxOwedEvents || st["events_owed_dropped"] != int64(2) {
		t.Fatalf("status beyond the bound: events_owed=%v events_owed_dropped=%v, want %d and 2", st["events_owed"], st["events_owed_dropped"], maxOwedEvents)
	}
	logs := e.logs.String()
	for _, dropped := range []string{"first0", "first1"} {
		if !strings.Contains(logs, dropped) {
			t.Errorf("no log line names the dropped event of %s", dropped)
		}
	}
	if strings.Contains(logs, "first2") || strings.Contains(logs, "sk_secret_first") {
		t.Errorf("the log names a kept event or carries a secret:\n%s", logs)
	}
	events.setFail(nil)
	e.tick()
	if got := len(events.take()); got != maxOwedEvents {
		t.Fatalf("%d owed events recorded after the outbox came back, want %d", got, maxOwedEvents)
	}
}
