// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: checks the package layering as a whole, so it names no single file.

package connect

import (
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The root package's layers, as docs/architecture.md draws them. Go's
// compiler keeps the internal packages apart; inside the root package only
// this test does: it type-checks the non-test files, places each in a layer
// by the table below, and fails when a file uses a name (package-level,
// method or field) declared in a layer its own never uses.
//
// Run it alone with: go test -run TestLayers -v .
type layer string

const (
	layerPaths  layer = "Paths"
	layerFlows  layer = "Flows"
	layerStore  layer = "Store"
	layerEngine layer = "Engine"
	layerBase   layer = "Base"
	// The two internal packages, reached by import rather than by name.
	layerCatalog layer = "Catalog" // internal/catalog
	layerClient  layer = "Client"  // internal/provider
	// The refresh engine's package: its queue, rules and failure states on
	// plain values, below every root layer (the base layer's entries hold
	// its refresh statuses).
	layerRefresh layer = "Refresh" // internal/refresh
	// The connect page's view, which only the paths use.
	layerPage layer = "Page" // internal/connectpage
)

// layerFiles places each non-test file of the root package. A file that
// matches no row fails the test: a new file must be placed, here and in
// docs/architecture.md.
var layerFiles = []struct {
	layer layer
	files []string // exact names; a trailing * matches a prefix
}{
	{layerPaths, []string{"backend.go", "path_*.go", "response.go", "fields.go",
		"api_reference.go"}},
	{layerFlows, []string{"refresher.go", "connection_writer.go", "token_issuer.go", "authorization.go", "import.go",
		// A pending authorization's one constructor; the connect page's
		// part in an authorization; the page's post under its session's lock.
		"pending_authorization.go", "authorization_page.go", "page_post.go",
		"connection_config_check.go", "connection_rendering.go",
		// Event delivery (another change's): the worker that calls receivers;
		// which change causes which event, and a failure's scrubbed error.
		"webhook_delivery.go", "event_causes.go",
		// The proxy: a provider's API called with a connection's credential.
		"proxy.go",
		// Writes of integrations, providers, connect sessions and the
		// mount's configuration.
		"integration_writer.go", "provider_writer.go", "session_writer.go", "config_writer.go",
		// A page of an integration's connections, filtered by tag.
		"connection_list.go"}},
	{layerStore, []string{"connection_store.go", "connection_cache.go", "connection_wal.go", "connection_unsaved.go",
		"keyed_lock.go", "pending_authorization_store.go", "pending_authorization_sweep.go", "storage.go", "mount_config_store.go",
		// Expiry entries by minute, swept a page at a time: pending
		// authorizations' and connect sessions'.
		"expiry_index.go",
		"provider_catalog.go",
		// Other changes' stores: the event outbox, webhook receivers,
		// connect sessions, the events a connection change owes.
		"event_outbox.go", "webhook_receivers.go", "session_store.go", "listed_count.go", "event_recording.go",
		// The proxy's per-connection call counts, kept in memory until a save.
		"proxy_calls.go",
		// The start-up scan's decoder of scheduling fields alone.
		"connection_schedule_scan.go", "connection_schedule_marks.go"}},
	// The engine as the root reaches it (internal/refresh holds the engine
	// itself): a connection entry handed to it, and the entry's side of
	// its rules.
	{layerEngine, []string{"refresh_engine.go", "refresh_policy.go"}},
	{layerBase, []string{"errors.go", "entries.go", "event_types.go", "validation.go",
		// Other changes': a connection's tags.
		"connection_tags.go"}},
}

// neverUses is the table's "never uses" column. The base layer's entries
// hold the catalog's auth modes and endpoint settings, so it may import
// internal/catalog (which imports nothing of the plugin but the provider
// client's template helpers); it never uses the provider client itself.
var neverUses = map[layer][]layer{
	layerPaths:  nil,
	layerFlows:  {layerPaths, layerPage},
	layerStore:  {layerPaths, layerFlows, layerRefresh, layerPage},            // the engine only through its scheduler interface
	layerEngine: {layerPaths, layerFlows, layerStore, layerClient, layerPage}, // the store is above it: it may use Base and internal/refresh only
	layerBase:   {layerPaths, layerFlows, layerStore, layerEngine, layerClient, layerPage},
}

// neverUsesFiles narrows a "may use": the store reaches the engine only
// through the scheduler interface it declares itself, never by the engine's
// own names (the pure rules of refresh_policy.go it may use).
var neverUsesFiles = map[layer][]string{
	layerStore: {"refresh_engine.go"},
}

// knownLayerViolations are violations accepted while a change moves the
// files behind them, each exactly as the test prints it (without its line
// number). The test fails when one of them no longer occurs, so the list
// only shrinks; it is empty now.
var knownLayerViolations = []string{}

const modulePath = "github.com/connect-vault/vault-plugin-secrets-connect"

// leafHelpers are the module's packages that import nothing of it: text
// and template utilities any layer may use.
var leafHelpers = map[string]bool{
	modulePath + "/internal/safetext":       true,
	modulePath + "/internal/headertemplate": true,
}

// importLayers are the module's packages that are a layer of their own.
var importLayers = map[string]layer{
	modulePath + "/internal/catalog":     layerCatalog,
	modulePath + "/internal/provider":    layerClient,
	modulePath + "/internal/refresh":     layerRefresh,
	modulePath + "/internal/connectpage": layerPage,
}

func fileLayer(name string) (layer, bool) {
	for _, row := range layerFiles {
		for _, pattern := range row.files {
			if ok, _ := filepath.Match(pattern, name); ok {
				return row.layer, true
			}
		}
	}
	return "", false
}

// parsedFile is one non-test file with what it declares and uses.
type parsedFile struct {
	name  string
	layer layer
	ast   *ast.File
}

func parseRootPackage(t *testing.T, dir string) (*token.FileSet, []parsedFile) {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []parsedFile
	for _, path := range names {
		name := filepath.Base(path)
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := fileLayer(name)
		files = append(files, parsedFile{name: name, layer: l, ast: f})
	}
	return fset, files
}

// exportImporter imports the root package's dependencies from the export
// data the go command already built for them (go list -export), so that the
// check resolves every name exactly, with the compiler's own rules, in a
// second or two.
func exportImporter(t *testing.T, fset *token.FileSet) types.Importer {
	t.Helper()
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if path, file, ok := strings.Cut(line, "\t"); ok && file != "" {
			exports[path] = file
		}
	}
	return importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
}

// fileRef is where a name a file uses is declared, and where the file
// first uses it.
type fileRef struct {
	file string
	pos  token.Position
}

// references are, per file, the names it uses that another file of the
// package declares (package-level names, methods, fields), each with its
// first use. Calls through an interface use the interface's method, not
// whatever implements it.
func references(t *testing.T, fset *token.FileSet, files []parsedFile) map[string]map[string]fileRef {
	t.Helper()
	asts := make([]*ast.File, len(files))
	for i, f := range files {
		asts[i] = f.ast
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: exportImporter(t, fset)}
	pkg, err := conf.Check("connect", fset, asts, info)
	if err != nil {
		t.Fatalf("type-checking the package: %v", err)
	}
	refs := map[string]map[string]fileRef{}
	for id, obj := range info.Uses {
		if obj.Pkg() != pkg || !obj.Pos().IsValid() {
			continue
		}
		use, decl := fset.Position(id.Pos()), fset.Position(obj.Pos())
		user, declaring := filepath.Base(use.Filename), filepath.Base(decl.Filename)
		if user == declaring {
			continue
		}
		if refs[user] == nil {
			refs[user] = map[string]fileRef{}
		}
		if prev, seen := refs[user][obj.Name()]; !seen || use.Offset < prev.pos.Offset {
			refs[user][obj.Name()] = fileRef{declaring, use}
		}
	}
	return refs
}

// layerViolations lists every use across the table's "never uses" column,
// every file in no row, and every method on *backend outside the paths.
func layerViolations(t *testing.T, dir string) []string {
	fset, files := parseRootPackage(t, dir)
	refs := references(t, fset, files)
	layerOfFile := map[string]layer{}
	for _, f := range files {
		layerOfFile[f.name] = f.layer
	}
	var out []string
	for _, f := range files {
		if f.layer == "" {
			out = append(out, fmt.Sprintf("%s: in no layer; place it in layerFiles (layers_test.go) and docs/architecture.md", f.name))
			continue
		}
		never := neverUses[f.layer]
		for _, imp := range f.ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if l, ok := importLayers[path]; ok && slices.Contains(never, l) {
				out = append(out, fmt.Sprintf("%s (%s): imports %s (%s), which %s never uses", f.name, f.layer, path, l, f.layer))
			}
			if f.layer == layerBase && strings.HasPrefix(path, modulePath) && !leafHelpers[path] && importLayers[path] != layerCatalog && importLayers[path] != layerRefresh {
				out = append(out, fmt.Sprintf("%s (%s): imports %s; the base layer imports nothing of the plugin", f.name, f.layer, path))
			}
		}
		for name, ref := range refs[f.name] {
			if l := layerOfFile[ref.file]; slices.Contains(never, l) {
				out = append(out, fmt.Sprintf("%s (%s): uses %s of %s (%s), which %s never uses [line %d]", f.name, f.layer, name, ref.file, l, f.layer, ref.pos.Line))
			} else if slices.Contains(neverUsesFiles[f.layer], ref.file) {
				out = append(out, fmt.Sprintf("%s (%s): uses %s of %s, which %s reaches only through an interface of its own [line %d]", f.name, f.layer, name, ref.file, f.layer, ref.pos.Line))
			}
		}
		for _, d := range f.ast.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && receiverIsBackend(fd) &&
				f.name != "backend.go" && !strings.HasPrefix(f.name, "path_") {
				out = append(out, fmt.Sprintf("%s (%s): declares method (*backend).%s; methods on *backend live only in backend.go and path_*.go", f.name, f.layer, fd.Name.Name))
			}
		}
	}
	sort.Strings(out)
	return out
}

func receiverIsBackend(fd *ast.FuncDecl) bool {
	typ := fd.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.Name == "backend"
}

// withoutLineNumbers lets the known violations survive edits that move lines.
func withoutLineNumbers(v string) string {
	if i := strings.LastIndex(v, " [line "); i >= 0 {
		return v[:i]
	}
	return v
}

// docViolations lists the root files docs/architecture.md does not name
// and the Go files it names that do not exist: the one map of the code
// stays true to it.
func docViolations(t *testing.T, dir string) []string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(dir, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([A-Za-z0-9_./*-]+\\.go)`").FindAllStringSubmatch(string(doc), -1) {
		named[m[1]] = true
	}
	var out []string
	_, files := parseRootPackage(t, dir)
	for _, f := range files {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(named)), func(n string) bool { ok, _ := filepath.Match(n, f.name); return ok }) {
			out = append(out, fmt.Sprintf("%s: not named in docs/architecture.md", f.name))
		}
	}
	for name := range named {
		if strings.Contains(name, "*") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			out = append(out, fmt.Sprintf("docs/architecture.md names %s, which does not exist", name))
		}
	}
	return out
}

func TestLayersOfTheRootPackage(t *testing.T) {
	found := append(layerViolations(t, "."), docViolations(t, ".")...)
	known := map[string]bool{}
	for _, k := range knownLayerViolations {
		known[k] = false
	}
	var failures []string
	for _, v := range found {
		key := withoutLineNumbers(v)
		if _, ok := known[key]; ok {
			known[key] = true
			t.Logf("known, being moved: %s", v)
			continue
		}
		failures = append(failures, v)
	}
	for k, seen := range known {
		if !seen {
			failures = append(failures, "no longer occurs, remove it from knownLayerViolations: "+k)
		}
	}
	if len(failures) > 0 {
		sort.Strings(failures)
		t.Errorf("%d layer violations (table in layers_test.go, docs/architecture.md):\n  %s", len(failures), strings.Join(failures, "\n  "))
	}
}

// A violation the check must see: a store file that calls a path handler's
// helper, an engine file that imports the provider client, a store file that
// imports the refresh engine's package, a base file that
// uses the store, and a file in no layer.
func TestLayersCheckSeesViolations(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("package connect\n\n"+src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("path_things.go", "func (b *backend) pathThingsRead() {}\nfunc thingFields() {}\ntype backend struct{}\n")
	write("connection_store.go", "type connectionStore struct{}\nfunc (cs *connectionStore) Get() { thingFields() }\n")
	write("refresh_policy.go", "import \""+modulePath+"/internal/provider\"\nvar _ = provider.Error{}\n")
	write("errors.go", "var errX = func() any { return &connectionStore{} }()\n")
	write("unplaced.go", "func unplaced() {}\n")
	write("refresh_engine.go", "type refreshEngine struct{}\n")
	write("connection_wal.go", "var _ *refreshEngine\n")
	write("connection_cache.go", "import \""+modulePath+"/internal/refresh\"\nvar _ = refresh.NewEngine\n")
	write("refresher.go", "func (b *backend) renew() { b.pathThingsRead() }\n")
	got := strings.Join(layerViolations(t, dir), "\n")
	for _, want := range []string{
		"connection_store.go (Store): uses thingFields of path_things.go (Paths), which Store never uses",
		"refresh_policy.go (Engine): imports " + modulePath + "/internal/provider (Client), which Engine never uses",
		"errors.go (Base): uses connectionStore of connection_store.go (Store), which Base never uses",
		"unplaced.go: in no layer",
		"refresher.go (Flows): uses pathThingsRead of path_things.go (Paths), which Flows never uses",
		"refresher.go (Flows): declares method (*backend).renew",
		"connection_wal.go (Store): uses refreshEngine of refresh_engine.go, which Store reaches only through an interface of its own",
		"connection_cache.go (Store): imports " + modulePath + "/internal/refresh (Refresh), which Store never uses",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing violation %q in:\n%s", want, got)
		}
	}
}

// forbiddenImports are, per package of the module, the import paths it
// must not reach, directly or through another package of the module.
var forbiddenImports = map[string]func(path string) bool{
	// The catalog is data and rules; Vault's request types stay in the
	// root package's paths.
	"internal/catalog": func(p string) bool {
		return p == "github.com/hashicorp/vault/sdk/framework" || p == "github.com/hashicorp/vault/sdk/logical"
	},
	// The provider client talks HTTP and nothing else: no Vault SDK, nothing
	// of the plugin but the leaf text helpers.
	"internal/provider": func(p string) bool {
		return strings.HasPrefix(p, "github.com/hashicorp/vault/") ||
			(strings.HasPrefix(p, modulePath) && !leafHelpers[p])
	},
	// The refresh engine schedules plain values: no Vault SDK, nothing of
	// the plugin (not even the catalog, which reaches the provider client).
	"internal/refresh": func(p string) bool {
		return strings.HasPrefix(p, "github.com/hashicorp/vault/") || strings.HasPrefix(p, modulePath)
	},
	// The connect page's view takes plain values and returns bytes and
	// headers: no Vault SDK, nothing of the plugin but the catalog's
	// schemas, the provider client's URL alternatives and the text helpers.
	"internal/connectpage": func(p string) bool {
		return strings.HasPrefix(p, "github.com/hashicorp/vault/") ||
			(strings.HasPrefix(p, modulePath) && !leafHelpers[p] &&
				p != modulePath+"/internal/catalog" && p != modulePath+"/internal/provider")
	},
	// The webhook sender signs and posts plain values: no Vault SDK,
	// nothing of the plugin.
	"internal/webhook": func(p string) bool {
		return strings.HasPrefix(p, "github.com/hashicorp/vault/") || strings.HasPrefix(p, modulePath)
	},
}

func TestInternalPackagesImportNothingAbove(t *testing.T) {
	for _, v := range importViolations(t, forbiddenImports) {
		t.Error(v)
	}
}

// TestConnectPageRuleRefusesVault: the connect page's import rule refuses
// Vault's SDK and the plugin's own packages, other than the catalog, the
// provider client and the leaf text helpers.
func TestConnectPageRuleRefusesVault(t *testing.T) {
	rule := forbiddenImports["internal/connectpage"]
	for _, p := range []string{"github.com/hashicorp/vault/sdk/logical", "github.com/hashicorp/vault/sdk/framework", modulePath, modulePath + "/internal/webhook"} {
		if !rule(p) {
			t.Errorf("the connect page may import %s", p)
		}
	}
	for _, p := range []string{"html/template", modulePath + "/internal/catalog", modulePath + "/internal/safetext"} {
		if rule(p) {
			t.Errorf("the connect page may not import %s", p)
		}
	}
}

// TestImportCheckSeesAMissingPackage shows that a checked package renamed
// away fails the import check instead of passing it with nothing checked.
func TestImportCheckSeesAMissingPackage(t *testing.T) {
	got := importViolations(t, map[string]func(string) bool{
		"internal/renamed-away": func(string) bool { return true },
	})
	if len(got) != 1 || !strings.Contains(got[0], "internal/renamed-away is checked for its imports but cannot be read") {
		t.Fatalf("violations = %q, want the missing package named", got)
	}
}

// importViolations holds each package of rules against what it reaches; a
// package that cannot be read is a violation, so that a checked package
// renamed or moved away makes its rule move with it.
func importViolations(t *testing.T, rules map[string]func(path string) bool) []string {
	t.Helper()
	var out []string
	for _, pkg := range slices.Sorted(maps.Keys(rules)) {
		if _, err := os.Stat(pkg); err != nil {
			out = append(out, fmt.Sprintf("%s is checked for its imports but cannot be read (%v): update forbiddenImports", pkg, err))
			continue
		}
		for _, v := range reachableImports(t, pkg, map[string]bool{}) {
			if rules[pkg](v.path) {
				out = append(out, fmt.Sprintf("%s reaches %s (imported by %s)", pkg, v.path, v.by))
			}
		}
	}
	return out
}

type importedBy struct{ path, by string }

// reachableImports are the imports of the package in dir and, through the
// module's own packages, of everything it imports.
func reachableImports(t *testing.T, dir string, seen map[string]bool) []importedBy {
	t.Helper()
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	names, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var out []importedBy
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			out = append(out, importedBy{path, name})
			if rel, ok := strings.CutPrefix(path, modulePath+"/"); ok {
				out = append(out, reachableImports(t, rel, seen)...)
			}
		}
	}
	return out
}
