// SPDX-License-Identifier: MPL-2.0

package connect

import "sync"

// keyedLocks is one read-write lock per key, made on first use and dropped
// when its last holder or waiter lets go. Unlike locksutil's 256 shared
// stripes, a holder that waits on a provider for the whole HTTP timeout
// blocks only its own key.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.RWMutex
	refs int // holders and waiters; guarded by keyedLocks.mu
}

func newKeyedLocks() *keyedLocks {
	return &keyedLocks{locks: map[string]*keyedLock{}}
}

// acquire returns key's lock with a reference taken, so that it stays in the
// map until release.
func (k *keyedLocks) acquire(key string) *keyedLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.locks[key]
	if !ok {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	return l
}

func (k *keyedLocks) release(key string, l *keyedLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(k.locks, key)
	}
}

// Lock takes key's lock for writing and returns its unlock.
func (k *keyedLocks) Lock(key string) (unlock func()) {
	l := k.acquire(key)
	l.Lock()
	return func() {
		l.Unlock()
		k.release(key, l)
	}
}

// TryLock takes key's lock for writing if no one holds it, and returns its
// unlock and true; else nil and false, without waiting.
func (k *keyedLocks) TryLock(key string) (unlock func(), ok bool) {
	l := k.acquire(key)
	if !l.TryLock() {
		k.release(key, l)
		return nil, false
	}
	return func() {
		l.Unlock()
		k.release(key, l)
	}, true
}

// RLock takes key's lock for reading and returns its unlock.
func (k *keyedLocks) RLock(key string) (unlock func()) {
	l := k.acquire(key)
	l.RLock()
	return func() {
		l.RUnlock()
		k.release(key, l)
	}
}

// size is the number of locks in use, for tests.
func (k *keyedLocks) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}
