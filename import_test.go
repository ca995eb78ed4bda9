// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// The import flow keeps the request's order, makes an item's own fault its
// result, and turns any other error into the whole import's error.
func TestImportAllResults(t *testing.T) {
	own := errors.New("bad item")
	fault := func(err error) (string, bool) { return err.Error(), errors.Is(err, own) }
	const n = 3 * importWorkers
	write := func(i int) importItem {
		id := fmt.Sprintf("c%02d", i)
		switch i % 3 {
		case 0:
			return importItem{id: id, created: true}
		case 1:
			return importItem{id: id}
		}
		return importItem{id: id, err: own}
	}
	results, err := importAll(n, write, fault)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		want := importResult{ConnectionID: fmt.Sprintf("c%02d", i), Status: []string{"created", "updated", "failed"}[i%3]}
		if i%3 == 2 {
			want.Error = "bad item"
		}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("results[%d] = %+v, want %+v", i, r, want)
		}
	}

	storage := errors.New("storage down")
	results, err = importAll(n, func(i int) importItem {
		if i == n-1 {
			return importItem{id: "last", err: storage}
		}
		return write(i)
	}, fault)
	if !errors.Is(err, storage) || results != nil {
		t.Fatalf("a storage error gave %v, %v; want the error and no results", results, err)
	}
}
