// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfigDefaultsAndUpdate(t *testing.T) {
	e := newTestEnv(t)
	data := e.mustDo(logical.ReadOperation, "config", nil)
	if got := data["refresh_margin"]; got != int64(900) {
		t.Fatalf("default refresh_margin = %v, want 900", got)
	}
	data = e.mustDo(logical.UpdateOperation, "config", map[string]any{"refresh_margin": "5m"})
	if got := data["refresh_margin"]; got != int64(300) {
		t.Fatalf("refresh_margin after write = %v, want 300", got)
	}
	data = e.mustDo(logical.ReadOperation, "config", nil)
	if got := data["refresh_margin"]; got != int64(300) {
		t.Fatalf("refresh_margin after read = %v, want 300", got)
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"refresh_margin": "10m"})
	before := e.snapshot()
	for _, bad := range []any{"-5m", "soon", []any{1}} {
		e.mustFail(logical.UpdateOperation, "config", map[string]any{"refresh_margin": bad}, http.StatusBadRequest)
	}
	e.assertUnchanged(before)
}
