// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPIDescribesEveryField reads the OpenAPI document Vault serves
// and checks that every parameter, request property and response property
// of the engine's paths has a description, and that the query parameters
// are declared as such.
func TestOpenAPIDescribesEveryField(t *testing.T) {
	s := vaultFor(t)
	status, body := s.raw(t, "GET", "sys/internal/specs/openapi", nil, "")
	if status != http.StatusOK {
		t.Fatalf("openapi: %d", status)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	type param struct {
		Name        string `json:"name"`
		In          string `json:"in"`
		Description string `json:"description"`
	}
	queries := map[string]bool{}
	found := 0
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, "/connect/") {
			continue
		}
		found++
		for key, raw := range item {
			var params []param
			if key == "parameters" {
				json.Unmarshal(raw, &params)
			} else {
				var op struct {
					Parameters []param `json:"parameters"`
				}
				json.Unmarshal(raw, &op)
				params = op.Parameters
			}
			for _, p := range params {
				if strings.TrimSpace(p.Description) == "" {
					t.Errorf("%s %s: parameter %s has no description", key, path, p.Name)
				}
				if p.In == "query" {
					queries[strings.TrimPrefix(path, "/connect/")+"?"+p.Name] = true
				}
			}
		}
	}
	if found < 10 {
		t.Fatalf("only %d connect paths in the document", found)
	}
	for name, schema := range doc.Components.Schemas {
		if !strings.HasPrefix(strings.ToLower(name), "connect") {
			continue
		}
		for prop, p := range schema.Properties {
			if strings.TrimSpace(p.Description) == "" {
				t.Errorf("schema %s: property %s has no description", name, prop)
			}
		}
	}
	for _, want := range []string{"oauth/callback?code", "oauth/callback?state", "oauth/callback?error", "oauth/callback?error_description",
		"connections/{integration}/?after", "connections/{integration}/?limit"} {
		if !queries[want] {
			t.Errorf("%s is not a query parameter; query parameters: %v", want, queries)
		}
	}
}
