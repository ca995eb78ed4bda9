// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Docs that run: every shell block of README.md and docs/*.md is run here,
// against the Vault that `make dev` (scripts/dev.sh) starts, so that a page
// cannot go stale. A block that cannot run (it calls a real provider, needs
// a cluster, or is a make target) is preceded by a marker saying why:
//
//	<!-- docs-test: not runnable: calls GitHub -->

// docBlock is one fenced shell block of a page.
type docBlock struct {
	page, text string
	line       int
	// notRunnable is the marker's reason; empty for a block that runs.
	notRunnable string
}

var (
	fenceRe  = regexp.MustCompile("^```(sh|shell|bash)\\s*$")
	markerRe = regexp.MustCompile(`^<!-- docs-test: not runnable: (.*?)\s*-->$`)
)

// repoRoot is the module's root, where the docs and scripts are.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// docPages are the pages whose blocks the test runs, from the root.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot(), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join(repoRoot(), "README.md")}, pages...)
}

// shellBlocks extracts the shell blocks of a Markdown page, with the
// not-runnable marker of each (the last non-blank line before its fence).
func shellBlocks(page string, text []byte) []docBlock {
	var (
		blocks []docBlock
		cur    *docBlock
		prev   string
		lineNo int
	)
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case fenceRe.MatchString(line):
			cur = &docBlock{page: page, line: lineNo}
			if m := markerRe.FindStringSubmatch(prev); m != nil {
				cur.notRunnable = m[1]
			}
		}
		if strings.TrimSpace(line) != "" {
			prev = strings.TrimSpace(line)
		}
	}
	return blocks
}

// The extractor finds blocks and their markers, and a marker must say why.
func TestShellBlockExtractor(t *testing.T) {
	page := "intro\n<!-- docs-test: not runnable: calls GitHub -->\n\n```sh\nvault read x\n```\n```text\nnot shell\n```\n```bash\necho a\necho b\n```\n"
	got := shellBlocks("p.md", []byte(page))
	if len(got) != 2 || got[0].notRunnable != "calls GitHub" || got[0].text != "vault read x\n" || got[0].line != 4 ||
		got[1].notRunnable != "" || got[1].text != "echo a\necho b\n" {
		t.Fatalf("blocks = %+v", got)
	}
	// Every page's markers say why: a marker without a reason is no marker,
	// so its block would run.
	for _, p := range docPages(t) {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(text), "docs-test: not runnable: -->") {
			t.Errorf("%s: a not-runnable marker without a reason", p)
		}
	}
}

// TestDocsShellBlocksRun runs each page's runnable blocks, in order and in
// one shell (a block may use what an earlier one set), against a fresh
// `make dev` environment: scripts/dev.sh on free loopback ports, with its
// local OAuth provider. A page's blocks start from the repository's root.
func TestDocsShellBlocksRun(t *testing.T) {
	vaultFor(t) // the switch and the binaries of the end-to-end tests
	oauthDev := buildOAuthDev(t)
	for _, page := range docPages(t) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		var runnable []docBlock
		for _, b := range shellBlocks(page, text) {
			if b.notRunnable == "" {
				runnable = append(runnable, b)
			}
		}
		if len(runnable) == 0 {
			continue
		}
		name, _ := filepath.Rel(repoRoot(), page)
		t.Run(name, func(t *testing.T) {
			env := startDevEnv(t, oauthDev)
			for _, b := range runnable {
				out, err := runBlock(t, env, b)
				if err != nil {
					t.Fatalf("%s:%d: %v\n--- block\n%s--- output\n%s", name, b.line, err, b.text, tail(out, 4000))
				}
			}
		})
	}
}

// devEnv is a running scripts/dev.sh: the environment its blocks run in.
type devEnv struct {
	vaultAddr string
	path      string
}

// buildOAuthDev builds scripts/oauth-dev, which dev.sh starts.
func buildOAuthDev(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "oauth-dev")
	cmd := exec.Command("go", "build", "-o", bin, "./scripts/oauth-dev")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building oauth-dev: %v\n%s", err, out)
	}
	return bin
}

// startDevEnv starts scripts/dev.sh on free ports and waits for its
// greeting; the test's cleanup stops it (its trap stops Vault and the OAuth
// provider).
func startDevEnv(t *testing.T, oauthDev string) *devEnv {
	t.Helper()
	vaultAddr, oauthAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	logs := t.TempDir()
	cmd := exec.Command("scripts/dev.sh")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "VAULT_DEV_ADDR="+vaultAddr, "OAUTH_DEV_ADDR="+oauthAddr,
		"VAULT_BIN="+os.Getenv("VAULT_BIN"), "PLUGIN_DIR="+os.Getenv("PLUGIN_DIR"), "OAUTH_DEV_BIN="+oauthDev, "DEV_LOG_DIR="+logs)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops the server.") {
		select {
		case err := <-done:
			t.Fatalf("scripts/dev.sh ended: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("scripts/dev.sh did not start:\n%s", out.String())
		}
	}
	return &devEnv{vaultAddr: "http://" + vaultAddr, path: vaultWrapperDir(t, "http://"+vaultAddr)}
}

// vaultWrapperDir is a directory whose `vault` runs VAULT_BIN against
// addr whatever VAULT_ADDR a block exports (the README's tour exports make
// dev's default address, which the test's server does not listen on).
func vaultWrapperDir(t *testing.T, addr string) string {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nVAULT_ADDR=%q exec %q \"$@\"\n", addr, os.Getenv("VAULT_BIN"))
	if err := os.WriteFile(filepath.Join(dir, "vault"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runBlock runs one block with bash -euo pipefail from the root, as a
// reader who ran `make dev` and exported what it printed would.
func runBlock(t *testing.T, env *devEnv, b docBlock) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script := "set -euo pipefail\n" + b.text
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+env.vaultAddr, "VAULT_TOKEN=root", "PATH="+env.path+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// freeLoopbackAddr is a loopback address nothing listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer written by a process and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
