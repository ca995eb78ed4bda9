// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestExpiryMinuteIsTheFirstAtOrAfter(t *testing.T) {
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expires time.Time
		want    string
	}{
		{at, "20260304T1000Z"},
		{at.Add(time.Nanosecond), "20260304T1001Z"},
		{at.Add(59 * time.Second), "20260304T1001Z"},
		{at.In(time.FixedZone("east", 3600)), "20260304T1000Z"}, // named in UTC
	} {
		if got := expiryMinute(tc.expires); got != tc.want {
			t.Errorf("expiryMinute(%v) = %s, want %s", tc.expires, got, tc.want)
		}
	}
}

// TestExpiryIndexSweepsPastMinutesAPageAtATime: a sweep hands out only the
// ids of minutes past, oldest first, at most a page; the next goes on from
// where it stopped without listing that minute again.
func TestExpiryIndexSweepsPastMinutesAPageAtATime(t *testing.T) {
	ctx := context.Background()
	counting := &listCountingStorage{Storage: &logical.InmemStorage{}}
	x := newExpiryIndex("things_expiry/", "things", 3)
	now := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	var want []string
	for i := range 4 {
		id := fmt.Sprintf("old%d", i)
		want = append(want, id)
		if err := x.put(ctx, counting, id, now.Add(-10*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.put(ctx, counting, "recent", now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	want = append(want, "recent")
	if err := x.put(ctx, counting, "live", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var got []string
	expire := func(ctx context.Context, s logical.Storage, expiryKey, id string) error {
		if expiryKey != x.key(id, now.Add(-10*time.Minute)) && expiryKey != x.key(id, now.Add(-time.Second)) {
			t.Errorf("expiry key %s of %s", expiryKey, id)
		}
		got = append(got, id)
		return s.Delete(ctx, expiryKey)
	}
	sweep := func() (handed []string, lists int64) {
		t.Helper()
		got = nil
		before := counting.lists.Load()
		if err := x.sweep(ctx, counting, now, expire); err != nil {
			t.Fatal(err)
		}
		return got, counting.lists.Load() - before
	}
	first, lists := sweep()
	if !slices.Equal(first, want[:3]) || lists != 2 {
		t.Fatalf("first sweep handed %v with %d lists, want %v with 2", first, lists, want[:3])
	}
	second, lists := sweep()
	// The rest of the old minute from the cursor, then the next past minute.
	if !slices.Equal(second, want[3:]) || lists != 2 {
		t.Fatalf("second sweep handed %v with %d lists, want %v with 2 (the minutes, the recent one's)", second, lists, want[3:])
	}
	if third, _ := sweep(); len(third) != 0 {
		t.Fatalf("third sweep handed %v; live entries are not expired", third)
	}
	if err := x.delete(ctx, counting, "live", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if left, _ := counting.List(ctx, "things_expiry/"); len(left) != 0 {
		t.Fatalf("expiry entries left: %v", left)
	}
}
