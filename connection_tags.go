// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
)

// Bounds of a connection's tags: they are labels (end_user_id,
// organization_id, …), carried by every event and every list answer, not
// a document store; metadata is where larger values go.
const (
	maxTags        = 32
	maxTagValueLen = 256
)

// tagKeyPattern is what a tag key may be: short, and free of the ':' that
// separates key and value in a list's tag filter.
var tagKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// tagsField is the tags field of the paths that set them: a connection
// write (and an import item), and authorize, whose tags the callback copies
// to the connection.
func tagsField(when string) *framework.FieldSchema {
	return &framework.FieldSchema{
		Type: framework.TypeKVPairs,
		Description: fmt.Sprintf("Labels of the connection, such as end_user_id, end_user_email or organization_id: "+
			"at most %d keys of letters, digits, '_', '.' and '-' (64 at most), values of at most %d characters. "+
			"Not secret: reads, lists and every event show them. %s", maxTags, maxTagValueLen, when),
	}
}

// tagsFromRequest returns the tags a request sets, and whether it sets
// them at all; given and empty clears them. The caller checks them
// (validateTags) in its own order. Errors name the field.
func tagsFromRequest(d *framework.FieldData) (map[string]string, bool, error) {
	if _, ok := d.Raw["tags"]; !ok {
		return nil, false, nil
	}
	v, ok, err := d.GetOkErr("tags")
	if err != nil {
		return nil, false, fmt.Errorf("tags must be an object of string values or a list of key=value pairs")
	}
	if !ok || v == nil || len(v.(map[string]string)) == 0 {
		return nil, true, nil
	}
	return v.(map[string]string), true, nil
}

// validateTags checks tags against the bounds above. Errors quote keys
// (bounded), never whole values.
func validateTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return fmt.Errorf("tags has %d keys; at most %d", len(tags), maxTags)
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !tagKeyPattern.MatchString(k) {
			return fmt.Errorf("tags key %q must be 1 to 64 letters, digits, '_', '.' or '-'", printable(k))
		}
		if err := validateTagValue(k, tags[k]); err != nil {
			return err
		}
	}
	return nil
}

// validateTagValue refuses values over the bound and control characters,
// which would reach logs and receivers as they are.
func validateTagValue(key, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("tags.%s must be valid UTF-8", key)
	}
	if n := utf8.RuneCountInString(v); n > maxTagValueLen {
		return fmt.Errorf("tags.%s has %d characters; at most %d", key, n, maxTagValueLen)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return fmt.Errorf("tags.%s may not contain control characters", key)
	}
	return nil
}

// tagFilter is a list's tag=key:value: connections whose tag key has
// exactly that value.
type tagFilter struct {
	key, value string
}

// parseTagFilter reads a list's tag parameter; empty means no filter.
func parseTagFilter(raw string) (*tagFilter, error) {
	if raw == "" {
		return nil, nil
	}
	key, value, ok := strings.Cut(raw, ":")
	if !ok || !tagKeyPattern.MatchString(key) {
		return nil, fmt.Errorf("tag must be key:value with a key of 1 to 64 letters, digits, '_', '.' or '-', e.g. tag=organization_id:acme; got %q", printable(raw))
	}
	if err := validateTagValue(key, value); err != nil {
		return nil, fmt.Errorf("tag: %w", err)
	}
	return &tagFilter{key: key, value: value}, nil
}

// matches reports whether c carries the filter's tag.
func (f *tagFilter) matches(c *connectionEntry) bool {
	v, ok := c.Tags[f.key]
	return ok && v == f.value
}
