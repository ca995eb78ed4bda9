// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestListedCountDerivesOnceAndKeepsTheCap(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	for _, k := range []string{"p/a", "p/b", "other/c"} {
		if err := s.Put(ctx, &logical.StorageEntry{Key: k, Value: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	var c listedCount
	c.removed() // before it is derived: the listing will see the deletion
	if err := c.load(ctx, s, "p/", "things"); err != nil {
		t.Fatal(err)
	}
	if got := c.n.Load(); got != 2 {
		t.Fatalf("derived %d, want the 2 entries under the prefix", got)
	}
	done := c.changing()
	if !c.reserve(3) || c.reserve(3) {
		t.Fatal("reserve must take the third place of three and refuse a fourth")
	}
	c.release()
	c.removed()
	done()
	if got := c.n.Load(); got != 1 {
		t.Fatalf("count %d after a release and a removal, want 1", got)
	}
	// Derived once: a later entry is counted by its change, not a listing.
	if err := s.Put(ctx, &logical.StorageEntry{Key: "p/d", Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if err := c.load(ctx, s, "p/", "things"); err != nil || c.n.Load() != 1 {
		t.Fatalf("a loaded count was listed again: %d %v", c.n.Load(), err)
	}
}

type failingList struct{ logical.InmemStorage }

func (f *failingList) List(context.Context, string) ([]string, error) {
	return nil, errors.New("storage down")
}

func TestListedCountNamesWhatItCounts(t *testing.T) {
	var c listedCount
	err := c.load(context.Background(), &failingList{}, "p/", "sessions")
	if err == nil || err.Error() != "counting sessions: storage down" {
		t.Fatalf("err = %v", err)
	}
	if c.loaded {
		t.Fatal("a failed listing marked the count loaded")
	}
}
