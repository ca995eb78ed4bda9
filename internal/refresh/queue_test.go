// SPDX-License-Identifier: MPL-2.0

package refresh

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// The queue against a plain map of key to priority, under random
// operations: every key once, popped earliest first.
func TestRefreshQueueMatchesAMap(t *testing.T) {
	q, want := newRefreshQueue(), map[string]int64{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		key, p := fmt.Sprintf("k%d", r.IntN(300)), r.Int64N(1000)
		switch r.IntN(5) {
		case 0:
			q.set(key, p)
			want[key] = p
		case 1:
			_, had := want[key]
			if q.pushIfAbsent(key, p) == had {
				t.Fatalf("pushIfAbsent(%s) with it queued: %v", key, had)
			}
			if !had {
				want[key] = p
			}
		case 2:
			it, ok := q.PopByKey(key)
			wp, had := want[key]
			if ok != had || (ok && (it.Key != key || it.Priority != wp)) {
				t.Fatalf("PopByKey(%s) = %+v %v, want %v %v", key, it, ok, wp, had)
			}
			delete(want, key)
		case 3:
			until := r.Int64N(300)
			due := q.popUntil(until)
			var prev int64 = -1
			for _, k := range due {
				wp, had := want[k]
				if !had || wp > until || wp < prev {
					t.Fatalf("popUntil(%d) gave %s at %d (had %v) after %d", until, k, wp, had, prev)
				}
				prev = wp
				delete(want, k)
			}
			for k, wp := range want {
				if wp <= until {
					t.Fatalf("popUntil(%d) left %s at %d", until, k, wp)
				}
			}
		case 4:
			first, ok := q.first()
			if ok != (len(want) > 0) || (ok && first != slices.Min(valuesOf(want))) {
				t.Fatalf("first = %d %v", first, ok)
			}
		}
		if q.Len() != len(want) {
			t.Fatalf("Len %d, want %d", q.Len(), len(want))
		}
	}
}

func valuesOf(m map[string]int64) []int64 {
	var out []int64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Saves (set) racing the start-up rebuild (pushIfAbsent) on the same keys:
// run with -race; every key ends queued once, a save's priority kept.
func TestRefreshQueueSaveWinsOverRebuild(t *testing.T) {
	q := newRefreshQueue()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				key := fmt.Sprintf("k%d", i)
				if w%2 == 0 {
					q.set(key, 2)
				} else {
					q.pushIfAbsent(key, 1)
				}
			}
		}()
	}
	wg.Wait()
	if q.Len() != 1000 {
		t.Fatalf("Len %d", q.Len())
	}
	for i := range 1000 {
		if it, _ := q.PopByKey(fmt.Sprintf("k%d", i)); it == nil || it.Priority != 2 {
			t.Fatalf("k%d: %+v, want the save's priority", i, it)
		}
	}
}
