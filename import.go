// SPDX-License-Identifier: MPL-2.0

package connect

import "sync"

// importWorkers is how many items of one import are written at once: each
// item is one locked load and save, and storage (Raft) takes concurrent
// writes faster than one after another.
const importWorkers = 16

// importResult is one item's outcome.
type importResult struct {
	ConnectionID string `json:"connection_id"`
	Status       string `json:"status"`
	Error        string `json:"error,omitempty"`
}

// importItem is what the write of one item did: created says whether its
// connection is new, err why it was not written.
type importItem struct {
	id      string
	created bool
	err     error
}

// importAll is the import flow: it writes items 0..n-1 with write,
// importWorkers at once, each on its own (one item's failure changes
// nothing of the others). An item's own fault (callersFault: one a single
// write would have answered with a 4xx or 424, and its message) is its
// result. Any other error (storage) makes the results worthless, since the
// caller cannot tell which items were stored: the first one is returned,
// once every item has run; every item is all-or-nothing, so a retry of the
// whole batch is safe.
func importAll(n int, write func(i int) importItem, callersFault func(error) (string, bool)) ([]importResult, error) {
	results := make([]importResult, n)
	var storageErr error
	var errOnce sync.Once
	forEachImportItem(n, func(i int) {
		res, err := importOutcome(write(i), callersFault)
		if err != nil {
			errOnce.Do(func() { storageErr = err })
		}
		results[i] = res
	})
	if storageErr != nil {
		return nil, storageErr
	}
	return results, nil
}

// importOutcome is the result of one item's write, and the error that is
// not the item's own.
func importOutcome(w importItem, callersFault func(error) (string, bool)) (importResult, error) {
	switch {
	case w.err == nil && w.created:
		return importResult{ConnectionID: w.id, Status: "created"}, nil
	case w.err == nil:
		return importResult{ConnectionID: w.id, Status: "updated"}, nil
	}
	if msg, own := callersFault(w.err); own {
		return importResult{ConnectionID: w.id, Status: "failed", Error: msg}, nil
	}
	return importResult{ConnectionID: w.id, Status: "failed", Error: "storage error"}, w.err
}

// forEachImportItem runs do for 0..n-1 on importWorkers goroutines.
func forEachImportItem(n int, do func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(importWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				do(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
