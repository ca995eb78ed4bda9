// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
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

// The pending authorization store alone: one pending authorization per connection (a new
// one replaces the old and takes no new place), a state spent by its first
// use, the cap per integration, and deletes by connection and integration.
func TestStateStorePutTakeDelete(t *testing.T) {
	ctx := t.Context()
	s := &logical.InmemStorage{}
	cfg := defaultConfig()
	cfg.MaxPendingAuthorizations = 2
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ss := newPendingAuthorizationStore(func(context.Context, logical.Storage) (*configEntry, error) { cp := *cfg; return &cp, nil },
		func() time.Time { return now }, hclog.NewNullLogger)
	put := func(id, state string) error {
		return ss.Put(ctx, s, hashState(state), &pendingAuthorization{Integration: "github", ConnectionID: id, ExpiresAt: now.Add(time.Hour)})
	}
	for _, p := range [][2]string{{"a", "s1"}, {"a", "s2"}, {"b", "s3"}} {
		if err := put(p[0], p[1]); err != nil {
			t.Fatalf("put %v: %v", p, err)
		}
	}
	var limit *pendingLimitError
	if err := put("c", "s4"); !errors.As(err, &limit) {
		t.Fatalf("a third connection's authorization = %v, want the cap's pendingLimitError", err)
	}
	if st, err := ss.Take(ctx, s, hashState("s1")); err != nil || st != nil {
		t.Fatalf("a replaced state is still usable: %+v, %v", st, err)
	}
	st, err := ss.Take(ctx, s, hashState("s2"))
	if err != nil || st == nil || st.ConnectionID != "a" {
		t.Fatalf("take = %+v, %v", st, err)
	}
	if st, _ := ss.Take(ctx, s, hashState("s2")); st != nil {
		t.Fatal("a state was used twice")
	}
	if err := put("c", "s4"); err != nil {
		t.Fatalf("a taken state did not give its place back: %v", err)
	}
	if err := ss.DeleteOf(ctx, s, "github", "b"); err != nil {
		t.Fatal(err)
	}
	if st, _ := ss.Take(ctx, s, hashState("s3")); st != nil {
		t.Fatal("a deleted connection's state is still usable")
	}
	if err := ss.DeleteOfIntegration(ctx, s, "github"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := logical.CollectKeys(ctx, s); len(keys) != 0 {
		t.Fatalf("after deleting the integration's states storage holds %v", keys)
	}
}

// The callback's take leaves a pending completion where it is (only
// complete or the sweep may spend it, and they revoke its tokens); the
// sweep's take still takes it.
func TestTakeAuthorizationLeavesAPendingCompletion(t *testing.T) {
	ctx := t.Context()
	s := &logical.InmemStorage{}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ss := newPendingAuthorizationStore(func(context.Context, logical.Storage) (*configEntry, error) { return defaultConfig(), nil },
		func() time.Time { return now }, hclog.NewNullLogger)
	held := &pendingAuthorization{Integration: "github", ConnectionID: "a", ExpiresAt: now.Add(time.Hour), Held: &heldTokens{AccessToken: "at"}}
	if err := ss.Put(ctx, s, hashState("c1"), held); err != nil {
		t.Fatal(err)
	}
	if st, err := ss.TakeAuthorization(ctx, s, hashState("c1")); err != nil || st != nil {
		t.Fatalf("the callback's take took a pending completion: %+v, %v", st, err)
	}
	if st, err := ss.Take(ctx, s, hashState("c1")); err != nil || st == nil || st.Held == nil {
		t.Fatalf("the completion is gone after the callback's take: %+v, %v", st, err)
	}
}

// Only values of newState's length and alphabet are states the callback
// looks up.
func TestWellFormedStateIsNewStatesForm(t *testing.T) {
	state, _, err := newState()
	if err != nil {
		t.Fatal(err)
	}
	if !wellFormedState(state) {
		t.Errorf("newState's %q refused", state)
	}
	for _, bad := range []string{"", state[:42], state + "A", "connect_completion\x00" + state, state[:42] + "=", state[:42] + "+", state[:42] + "/", state[:42] + "\x00"} {
		if wellFormedState(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
