// SPDX-License-Identifier: MPL-2.0

package e2e

// The browser the connect page's tests drive: one headless Chromium for the
// whole test binary, started by the first test that needs it, each test in
// a browser context of its own (no cookie or cache shared between tests).
// The tests act as a person does: they find fields by their label and
// buttons and links by their words, never by an id or a class.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

var (
	browserOnce   sync.Once
	browserRoot   context.Context // a context holding the running browser
	browserErr    error
	browserCancel context.CancelFunc = func() {}
)

// chromiumPath finds the browser as scripts/install-chromium.sh does.
func chromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found (chromium, /usr/bin/chromium, CHROMIUM_BIN); scripts/install-chromium.sh installs Debian's chromium package")
}

// startBrowser starts the shared browser. The flags keep a headless Chromium
// in a sandbox-less container from reaching for Google's hosts (the network
// here is closed, and it would wait on them) and from using a profile of a
// person's.
func startBrowser() (context.Context, error) {
	path, err := chromiumPath()
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "connect-chromium-")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	browserCancel = func() {
		cancelBrowser()
		cancelAlloc()
		os.RemoveAll(profile)
	}
	// The first action starts the process, which lives as long as that
	// action's context: so the action gets ctx itself, and a timer bounds
	// it, so that a browser that cannot start fails the test instead of
	// hanging it.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err = <-started:
	case <-time.After(60 * time.Second):
		err = errors.New("no answer in 60s")
	}
	if err != nil {
		browserCancel()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	return ctx, nil
}

// stopBrowser ends the shared browser, if a test started it.
func stopBrowser() { browserCancel() }

// browserTab opens a tab in a fresh browser context of the shared browser,
// bounded by timeout and closed when the test ends. The browser tests run
// when a Chromium is found; with CONNECT_BROWSER=1 (make test) a missing
// one is a failure, not a skip.
func browserTab(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	browserOnce.Do(func() { browserRoot, browserErr = startBrowser() })
	if browserErr != nil {
		if os.Getenv("CONNECT_BROWSER") == "1" {
			t.Fatalf("browser: %v", browserErr)
		}
		t.Skipf("browser tests need Chromium (CONNECT_BROWSER=1 makes this a failure): %v", browserErr)
	}
	tab, cancelTab := chromedp.NewContext(browserRoot, chromedp.WithNewBrowserContext())
	ctx, cancel := context.WithTimeout(tab, timeout)
	t.Cleanup(func() { cancel(); cancelTab() })
	watchTab(t, ctx)
	return ctx
}

// newTabLike opens a second tab in the same browser context as ctx (same
// cookies, as a person's second tab), bounded by ctx.
func newTabLike(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	watchTab(t, tab)
	return tab
}

// watchTab records what a tab fetched and what the browser reported, and
// when the test ends checks the promise of the pages it showed: nothing
// was loaded but the pages themselves (no script, stylesheet, image or font
// from anywhere), and the browser refused nothing under a page's
// Content-Security-Policy (a stylesheet whose hash the policy does not
// name would be refused, and only a browser says so).
func watchTab(t *testing.T, ctx context.Context) {
	t.Helper()
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			u, err := url.Parse(ev.Request.URL)
			if ev.Type == network.ResourceTypeDocument || u.Scheme == "about" || (err == nil && u.Path == "/favicon.ico") {
				return // a navigation, or the browser's own favicon look-up
			}
			if r := ev.RedirectResponse; r != nil {
				if from, err := url.Parse(r.URL); err == nil && from.Path == "/favicon.ico" {
					return // the favicon look-up, where Vault redirects it (its UI)
				}
			}
			problems = append(problems, fmt.Sprintf("the page loaded a %s: %s", ev.Type, ev.Request.URL))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Source == cdplog.EntrySourceSecurity || strings.Contains(ev.Entry.Text, "Content Security Policy") {
				problems = append(problems, "the browser reported: "+ev.Entry.Text)
			}
		}
	})
	if err != nil {
		t.Fatalf("watching the tab: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
	})
}

// xq quotes s as an XPath string literal.
func xq(s string) string {
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `concat('` + strings.ReplaceAll(s, `'`, `', "'", '`) + `')`
}

// labelled is the XPath of the form control a person finds by its label's
// words: the control named by the label's for attribute.
func labelled(label string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//*[self::input or self::select or self::textarea][@id=//label[normalize-space()=%s]/@for]`, xq(label)))
}

// named is the XPath of a link or button a person finds by its words: its
// whole text, its first line (a link whose name is followed by a smaller
// description), or the first words of it.
func named(words string) chromedp.Search {
	w := xq(words)
	says := fmt.Sprintf(`normalize-space()=%[1]s or normalize-space(text()[1])=%[1]s or starts-with(normalize-space(), concat(%[1]s, ' '))`, w)
	return chromedp.Search(fmt.Sprintf(`(//a[%[1]s] | //button[%[1]s] | //input[(@type='submit' or @type='button') and @value=%[2]s])[1]`, says, w))
}

// open navigates to u and returns the document's response.
func open(t *testing.T, ctx context.Context, u string) *network.Response {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	return resp
}

// press clicks the link or button with these words and waits for the page
// it leads to; it returns that page's response.
func press(t *testing.T, ctx context.Context, words string) *network.Response {
	t.Helper()
	present(t, ctx, named(words), words)
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(named(words), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("press %q: %v\npage: %s", words, err, pageText(ctx))
	}
	return resp
}

// fill types value into the control labelled label.
func fill(t *testing.T, ctx context.Context, label, value string) {
	t.Helper()
	present(t, ctx, labelled(label), "a field labelled "+label)
	if err := chromedp.Do(ctx, chromedp.SendKeys(labelled(label), value, chromedp.NodeVisible)); err != nil {
		t.Fatalf("fill %q: %v\npage: %s", label, err, pageText(ctx))
	}
}

// findTimeout bounds the wait for a link, button or field a person looks
// for: the page is there already, so a missing one fails at once, with the
// page's text, instead of at the tab's deadline.
const findTimeout = 10 * time.Second

// present fails the test unless the page shows sel (what says what it is).
func present(t *testing.T, ctx context.Context, sel chromedp.Search, what string) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	if err := chromedp.Do(short, chromedp.WaitVisible(sel)); err != nil {
		t.Fatalf("the page has no %s (%v):\n%s", what, err, pageText(ctx))
	}
}

// waitForText waits until the tab shows a page whose text has words: the
// end of a chain of navigations no single response marks (a page that
// sends the browser on, a provider's redirects).
func waitForText(t *testing.T, ctx context.Context, words string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		text := pageText(ctx)
		if strings.Contains(text, words) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no page with %q came; the tab shows %s:\n%s", words, location(t, ctx), text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageText is the visible text of the page, for checks and failure messages.
func pageText(ctx context.Context) string {
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(short, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		return "(no page text: " + err.Error() + ")"
	}
	return s
}

// pageHTML is the page's whole DOM as HTML.
func pageHTML(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatalf("page HTML: %v", err)
	}
	return s
}

// location is the URL the tab shows.
func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	return u
}

// screenshotWidths are a desktop's and a phone's.
var screenshotWidths = []int64{1280, 375}

// screenshot saves the page at each screenshot width as name-<width>.png in
// the test's artifact directory (kept with go test -artifacts) and, with
// CONNECT_DOC_SCREENSHOTS=1, in docs/connect/ for the documentation. The
// viewport is as tall as the page (at most maxShotHeight) so the images
// stay small.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dirs := []string{t.ArtifactDir()}
	if os.Getenv("CONNECT_DOC_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join("..", "docs", "connect"))
	}
	for _, w := range screenshotWidths {
		img, err := shoot(ctx, w)
		if err != nil {
			t.Fatalf("screenshot %s at %d px: %v", name, w, err)
		}
		for _, dir := range dirs {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w)), img, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := chromedp.Do(ctx, chromedp.ResetViewport()); err != nil {
		t.Fatalf("reset viewport: %v", err)
	}
}

const maxShotHeight = 1000

// narrowestWidth is the width the page must be readable at: a small phone.
const narrowestWidth = 320

// fitsNarrowScreen checks that the page needs no sideways scrolling at
// narrowestWidth CSS pixels: nothing is wider than the screen.
func fitsNarrowScreen(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(narrowestWidth, 600)); err != nil {
		t.Fatal(err)
	}
	defer chromedp.Do(ctx, chromedp.ResetViewport())
	w, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if w > narrowestWidth {
		t.Errorf("at %d px the page is %d px wide: it scrolls sideways", narrowestWidth, w)
	}
}

// shoot takes one PNG of the page at width w, re-encoded at Go's best
// compression.
func shoot(ctx context.Context, w int64) ([]byte, error) {
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, 400)); err != nil {
		return nil, err
	}
	h, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`document.documentElement.scrollHeight`))
	if err != nil {
		return nil, err
	}
	h = min(max(h, 200), maxShotHeight)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		return nil, err
	}
	raw, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tabTo moves the keyboard focus with the Tab key, as a person without a
// mouse does, until it is on the control or link whose label or words
// start with name; at most maxTabs presses.
func tabTo(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	const maxTabs = 30
	var seen []string
	for range maxTabs {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatalf("Tab: %v", err)
		}
		focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			const e = document.activeElement;
			if (!e || e === document.body) return '';
			const words = (e.labels && e.labels.length) ? e.labels[0].textContent : (e.textContent || e.value || '');
			return words.replace(/\s+/g, ' ').trim();
		})()`))
		if err != nil {
			t.Fatalf("focused element: %v", err)
		}
		if strings.HasPrefix(focused, name) {
			return
		}
		seen = append(seen, focused)
	}
	t.Fatalf("%d Tab presses never reached %q; focus went through %q", maxTabs, name, seen)
}

// key presses keys on the focused element and waits for the page they lead
// to (Enter on a link or in a form's field).
func key(t *testing.T, ctx context.Context, keys string) *network.Response {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(keys))
	if err != nil {
		t.Fatalf("keys %q: %v\npage: %s", keys, err, pageText(ctx))
	}
	return resp
}
