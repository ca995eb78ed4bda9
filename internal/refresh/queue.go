// SPDX-License-Identifier: MPL-2.0

package refresh

import (
	"container/heap"
	"sync"
)

// refreshQueue is the engine's priority queue: connection keys ordered by
// the time (Unix milliseconds) of their next refresh, each key at most once.
// It replaces the SDK's queue.PriorityQueue, which deep-copies every item it
// pushes by reflection (copystructure): at start that copy cost a quarter of
// building the queue of a million connections. Safe for concurrent use.
type refreshQueue struct {
	mu    sync.Mutex
	heap  queueHeap
	byKey map[string]*queueItem
}

// queueItem is one queued connection.
type queueItem struct {
	Key      string
	Priority int64 // Unix milliseconds of the next refresh
	index    int   // in the heap
}

func newRefreshQueue() *refreshQueue {
	return &refreshQueue{byKey: map[string]*queueItem{}}
}

// Len is the number of queued keys.
func (q *refreshQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.heap)
}

// set queues key at priority, moving it if it is queued already.
func (q *refreshQueue) set(key string, priority int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it, ok := q.byKey[key]; ok {
		it.Priority = priority
		heap.Fix(&q.heap, it.index)
		return
	}
	q.push(key, priority)
}

// pushIfAbsent queues key at priority unless it is queued already, and
// reports whether it did.
func (q *refreshQueue) pushIfAbsent(key string, priority int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.byKey[key]; ok {
		return false
	}
	q.push(key, priority)
	return true
}

// lower queues key at priority unless it is queued earlier already: a
// check of the stored connections may bring a refresh forward, never put
// it off, since a refresh that finds itself early only reschedules.
func (q *refreshQueue) lower(key string, priority int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it, ok := q.byKey[key]; ok {
		if priority < it.Priority {
			it.Priority = priority
			heap.Fix(&q.heap, it.index)
		}
		return
	}
	q.push(key, priority)
}

// push adds a key known to be absent; q.mu is held.
func (q *refreshQueue) push(key string, priority int64) {
	it := &queueItem{Key: key, Priority: priority}
	q.byKey[key] = it
	heap.Push(&q.heap, it)
}

// remove drops key if it is queued.
func (q *refreshQueue) remove(key string) {
	q.PopByKey(key)
}

// PopByKey removes key and returns its item; nil and false when it is not
// queued.
func (q *refreshQueue) PopByKey(key string) (*queueItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it, ok := q.byKey[key]
	if !ok {
		return nil, false
	}
	heap.Remove(&q.heap, it.index)
	delete(q.byKey, key)
	return it, true
}

// popUntil removes and returns, earliest first, the keys whose priority is
// at most until.
func (q *refreshQueue) popUntil(until int64) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var due []string
	for len(q.heap) > 0 && q.heap[0].Priority <= until {
		it := heap.Pop(&q.heap).(*queueItem)
		delete(q.byKey, it.Key)
		due = append(due, it.Key)
	}
	return due
}

// first returns the earliest priority; false when the queue is empty.
func (q *refreshQueue) first() (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.heap) == 0 {
		return 0, false
	}
	return q.heap[0].Priority, true
}

// queueHeap is container/heap's view of the items, earliest first.
type queueHeap []*queueItem

func (h queueHeap) Len() int           { return len(h) }
func (h queueHeap) Less(i, j int) bool { return h[i].Priority < h[j].Priority }
func (h queueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *queueHeap) Push(x any) {
	it := x.(*queueItem)
	it.index = len(*h)
	*h = append(*h, it)
}

func (h *queueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
