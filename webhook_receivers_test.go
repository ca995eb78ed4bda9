// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

func TestWebhookRotationSignsWithBothSecrets(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{})
	rcv := newHookReceiver(t, always(http.StatusOK))
	oldSecret := e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})["secret"].(string)
	rotated := e.mustDo(logical.UpdateOperation, "webhooks/app", map[string]any{"rotate_secret": true})
	newSecret, _ := rotated["secret"].(string)
	if newSecret == "" || newSecret == oldSecret || rotated["previous_secret_until"] == "" {
		t.Fatalf("rotation answer: %v", rotated)
	}
	recordTestEvent(t, e, eventConnectionCreated, "a")
	waitFor(t, "the delivery", func() bool { return len(rcv.accepted()) == 1 })
	req := rcv.requests()[0]
	if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2", n)
	}
	if verifyStandardWebhook(t, oldSecret, req.header, req.body) != 1 || verifyStandardWebhook(t, newSecret, req.header, req.body) != 1 {
		t.Fatal("the old and the new secret do not both verify")
	}
	for _, secret := range []string{oldSecret, newSecret} {
		if err := verifyWithLibrary(t, secret, req.header, req.body); err != nil {
			t.Fatalf("the Standard Webhooks library refuses a delivery during the overlap: %v", err)
		}
	}

	// Given secret, no overlap: one signature, by the given secret.
	given, _ := webhook.GenerateSecret()
	resp := e.mustDo(logical.UpdateOperation, "webhooks/app", map[string]any{"secret": given, "secret_overlap": 0})
	if _, shown := resp["secret"]; shown {
		t.Fatal("a given secret is echoed")
	}
	recordTestEvent(t, e, eventConnectionCreated, "b")
	waitFor(t, "the second delivery", func() bool { return len(rcv.accepted()) == 2 })
	req = rcv.requests()[1]
	if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 1 || verifyStandardWebhook(t, given, req.header, req.body) != 1 {
		t.Fatalf("after a rotation without overlap: %q", req.header.Get("webhook-signature"))
	}
}
