// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBackgroundRefreshThroughVault leaves a due connection unread and waits
// for Vault's periodic hook (about once a minute) to refresh it.
func TestBackgroundRefreshThroughVault(t *testing.T) {
	s := vaultFor(t)
	t.Parallel()
	as := oauthIntegrations(t, s, "bg")
	rt := as.IssueRefreshToken()
	exp := time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)
	s.mustCLI(t, "write", "connect/connections/bg-gh/c1", "access_token=old", "refresh_token="+rt, "expires_at="+exp)

	deadline := time.Now().Add(150 * time.Second)
	for as.RefreshTokenValid(rt) {
		if time.Now().After(deadline) {
			t.Fatal("the periodic hook did not refresh a due connection in 150s")
		}
		time.Sleep(time.Second)
	}
	// Give the plugin a moment to store what the provider answered.
	var raw map[string]any
	for range 50 {
		raw = data(t, s, "connect/connections/bg-gh/c1/raw")
		if raw["refresh_token"] != rt {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if raw["access_token"] == "old" || !as.AccessTokenValid(raw["access_token"].(string)) || raw["refresh_status"] != "ok" {
		t.Fatalf("after the background refresh: %v %v", raw["access_token"], raw["refresh_status"])
	}
	if raw["last_refreshed_at"] == "" || raw["next_refresh_at"] == "" {
		t.Fatalf("refresh times not shown: %v", raw)
	}
}

func TestFailureStatesThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "fs")
	s.mustCLI(t, "write", "connect/integrations/fs-gh", "auth_style=header")
	soon := time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)
	s.mustCLI(t, "write", "connect/connections/fs-gh/flaky", "access_token=still-good", "refresh_token="+as.IssueRefreshToken(), "expires_at="+soon)
	as.Fail("temporarily_unavailable", http.StatusServiceUnavailable)

	// A valid token whose refresh fails: served, with a warning.
	out := s.mustCLI(t, "read", "-format=json", "connect/connections/fs-gh/flaky")
	var sec struct {
		Data     map[string]any `json:"data"`
		Warnings []string       `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Data["access_token"] != "still-good" || len(sec.Warnings) == 0 || !strings.Contains(sec.Warnings[0], "temporarily_unavailable") {
		t.Fatalf("read during failure: %v %v", sec.Data["access_token"], sec.Warnings)
	}
	if sec.Data["refresh_status"] != "failing" || sec.Data["refresh_failures"] != float64(1) {
		t.Fatalf("refresh state: %v %v", sec.Data["refresh_status"], sec.Data["refresh_failures"])
	}
	// Within the backoff, reads do not ask again.
	before := as.Requests()
	s.mustCLI(t, "read", "connect/connections/fs-gh/flaky")
	if as.Requests() != before {
		t.Fatal("a read within the backoff asked the provider")
	}

	// An expired token and invalid_grant: 424, and re-authorization needed.
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	s.mustCLI(t, "write", "connect/connections/fs-gh/dead", "access_token=expired", "refresh_token="+as.IssueRefreshToken(), "expires_at="+past)
	as.Fail("invalid_grant", http.StatusBadRequest)
	status, body := s.raw(t, "GET", "connect/connections/fs-gh/dead", nil, "")
	if status != http.StatusFailedDependency || !strings.Contains(body, "reauthorization_required") || strings.Contains(body, "expired\"") {
		t.Fatalf("expired with invalid_grant: %d %s", status, body)
	}

	status, body = s.raw(t, "LIST", "connect/connections/fs-gh", nil, "")
	if status != http.StatusOK || !strings.Contains(body, `"refresh_status":"reauthorization_required"`) || !strings.Contains(body, `"refresh_status":"failing"`) {
		t.Fatalf("list key_info: %d %s", status, body)
	}
	st := data(t, s, "connect/status")
	counts := st["refresh_status_counts"].(map[string]any)
	if counts["failing"].(float64) < 1 || counts["reauthorization_required"].(float64) < 1 || st["refresh_failures_total"].(float64) < 2 {
		t.Fatalf("status: %v", st)
	}
	if st["queue_ready"] != true {
		t.Fatalf("queue not ready: %v", st)
	}

	// Recovery: the provider works again and a forced refresh succeeds.
	as.Fail("", 0)
	s.mustCLI(t, "write", "-f", "connect/connections/fs-gh/flaky/refresh")
	if got := data(t, s, "connect/connections/fs-gh/flaky")["refresh_status"]; got != "ok" {
		t.Fatalf("after recovery: %v", got)
	}
}
