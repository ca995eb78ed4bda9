// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"
)

// connectionListQuery is one page of a list of an integration's
// connections asked for: after the id After, at most Limit ids, only
// those Filter matches (nil: all), with their entries when WithEntries.
type connectionListQuery struct {
	After       string
	Limit       int
	Filter      *tagFilter
	WithEntries bool
}

// listConnectionPage returns one page of integration's connection ids,
// sorted, and with q.WithEntries or a filter each id's entry (in the same
// order), read through the store. Without either it reads no entry. An id whose connection was
// deleted since the list is left out.
func listConnectionPage(ctx context.Context, store *connectionStore, s logical.Storage, integration string, q connectionListQuery) ([]string, []*connectionEntry, error) {
	ids, err := store.List(ctx, s, integration)
	if err != nil {
		return nil, nil, err
	}
	if q.Filter == nil {
		ids = pageAfter(ids, q.After, q.Limit)
		if !q.WithEntries {
			return ids, nil, nil
		}
	} else {
		ids = pageAfter(ids, q.After, 0)
	}
	page := make([]string, 0, min(len(ids), q.Limit))
	entries := make([]*connectionEntry, 0, cap(page))
	for _, id := range ids {
		if len(page) == q.Limit {
			break
		}
		c, err := store.Get(ctx, s, integration, id)
		if err != nil {
			return nil, nil, err
		}
		if c == nil || (q.Filter != nil && !q.Filter.matches(c)) { // deleted since the list, or filtered out
			continue
		}
		page = append(page, id)
		entries = append(entries, c)
	}
	return page, entries, nil
}
