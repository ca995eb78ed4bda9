// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"sync"
	"testing"
	"time"
)

func TestKeyedLocksSerialiseOneKey(t *testing.T) {
	locks := newKeyedLocks()
	var mu sync.Mutex
	inside, maxInside := 0, 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer locks.Lock("k")()
			mu.Lock()
			inside++
			maxInside = max(maxInside, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
		}()
	}
	wg.Wait()
	if maxInside != 1 || locks.size() != 0 {
		t.Fatalf("max holders %d, locks left %d", maxInside, locks.size())
	}
}

func TestKeyedLocksTryLock(t *testing.T) {
	k := newKeyedLocks()
	unlock := k.Lock("a")
	if _, ok := k.TryLock("a"); ok {
		t.Fatal("TryLock took a held lock")
	}
	other, ok := k.TryLock("b")
	if !ok {
		t.Fatal("TryLock could not take a free key's lock")
	}
	other()
	unlock()
	again, ok := k.TryLock("a")
	if !ok {
		t.Fatal("TryLock could not take a released lock")
	}
	again()
	if n := k.size(); n != 0 {
		t.Fatalf("%d locks left in use", n)
	}
}
