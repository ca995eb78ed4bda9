// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

// Storage of webhook receivers. A receiver's entry holds its secrets, so
// its prefix is seal-wrapped; its delivery figures are kept apart, so that
// a delivery never rewrites the entry an operator writes.
const (
	webhookPrefix      = "webhooks/"
	webhookStatsPrefix = "webhook_stats/"
)

// newWebhookID returns a new receiver's random id.
func newWebhookID() (string, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(r[:]), nil
}

// defaultSecretOverlap is how long a rotated-out secret still signs
// deliveries, so that receivers can switch to the new one without a gap.
const defaultSecretOverlap = 24 * time.Hour

// webhookEntry is one receiver of events.
type webhookEntry struct {
	entryFormat
	Name string `json:"name"`
	// ID is random, set when the receiver is created: it tells this
	// receiver's outbox entries from those of a deleted one of the same
	// name (empty for receivers of earlier versions).
	ID  string `json:"id,omitempty"`
	URL string `json:"url"`
	// Events are the types it receives; empty means every type.
	Events  []eventType `json:"events,omitempty"`
	Enabled bool        `json:"enabled"`
	// Secret is the current signing secret ("whsec_…").
	Secret string `json:"secret"`
	// PreviousSecret also signs deliveries until PreviousSecretUntil.
	PreviousSecret      string        `json:"previous_secret,omitempty"`
	PreviousSecretUntil time.Time     `json:"previous_secret_until,omitzero"`
	SecretOverlap       time.Duration `json:"secret_overlap"`
	// Concurrency bounds the attempts in flight to the receiver at once;
	// 0 (receivers of earlier versions) is defaultDeliveryConcurrency.
	Concurrency int       `json:"concurrency,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// wants says whether the receiver takes new events of type typ.
func (w *webhookEntry) wants(typ eventType) bool {
	if !w.Enabled {
		return false
	}
	if len(w.Events) == 0 {
		return true
	}
	for _, t := range w.Events {
		if t == typ {
			return true
		}
	}
	return false
}

// concurrency is how many attempts may be in flight to the receiver.
func (w *webhookEntry) concurrency() int {
	if w.Concurrency < 1 {
		return defaultDeliveryConcurrency
	}
	return w.Concurrency
}

// signingKeys are the HMAC keys a delivery at now is signed with: the
// current secret's, and the previous one's while it overlaps.
func (w *webhookEntry) signingKeys(now time.Time) ([][]byte, error) {
	key, err := webhook.ParseSecret(w.Secret)
	if err != nil {
		return nil, fmt.Errorf("receiver %q: stored secret: %w", w.Name, err)
	}
	keys := [][]byte{key}
	if w.PreviousSecret != "" && now.Before(w.PreviousSecretUntil) {
		if prev, err := webhook.ParseSecret(w.PreviousSecret); err == nil {
			keys = append(keys, prev)
		}
	}
	return keys, nil
}

// webhookStats are a receiver's delivery figures.
type webhookStats struct {
	entryFormat
	// Delivered counts events the receiver accepted (2xx).
	Delivered int64 `json:"delivered"`
	// Failed counts attempts that failed (each retry counts).
	Failed int64 `json:"failed"`
	// Dead counts events given up.
	Dead           int64     `json:"dead"`
	LastAttemptAt  time.Time `json:"last_attempt_at,omitzero"`
	LastDeliveryAt time.Time `json:"last_delivery_at,omitzero"`
	LastStatus     int       `json:"last_status,omitempty"`
	// LastError is the sender's text: a status or a transport failure,
	// never the receiver's body or a secret.
	LastError string `json:"last_error,omitempty"`
}

var webhookNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func validateWebhookName(name string) error {
	if !webhookNameRe.MatchString(name) {
		return fmt.Errorf("webhook name %q is invalid: use letters, digits, '.', '_' and '-' (up to 128, starting with a letter or digit)", printable(name))
	}
	return nil
}

func getWebhook(ctx context.Context, s logical.Storage, name string) (*webhookEntry, error) {
	var w webhookEntry
	found, err := getJSON(ctx, s, webhookPrefix+name, &w)
	if err != nil || !found {
		return nil, err
	}
	return &w, nil
}

func putWebhook(ctx context.Context, s logical.Storage, w *webhookEntry) error {
	return putJSON(ctx, s, webhookPrefix+w.Name, w)
}

func listWebhooks(ctx context.Context, s logical.Storage) ([]string, error) {
	names, err := s.List(ctx, webhookPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing webhooks: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

func getWebhookStats(ctx context.Context, s logical.Storage, name string) (*webhookStats, error) {
	var st webhookStats
	if _, err := getJSON(ctx, s, webhookStatsPrefix+name, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// webhookSet caches the receivers, which every recorded event consults:
// loaded from storage once, dropped when one is written here or on
// another node.
type webhookSet struct {
	mu sync.Mutex
	// byName is nil until loaded.
	byName map[string]*webhookEntry
	// gen counts invalidations, so that a load that raced one is not kept.
	gen uint64
	// writeMu is held by receiver writes and deletes.
	writeMu sync.Mutex
}

func (ws *webhookSet) invalidate() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.byName = nil
	ws.gen++
}

// all returns the receivers by name, loading them when needed. The map
// and its entries must not be changed.
func (ws *webhookSet) all(ctx context.Context, s logical.Storage) (map[string]*webhookEntry, error) {
	ws.mu.Lock()
	m, gen := ws.byName, ws.gen
	ws.mu.Unlock()
	if m != nil {
		return m, nil
	}
	names, err := listWebhooks(ctx, s)
	if err != nil {
		return nil, err
	}
	m = make(map[string]*webhookEntry, len(names))
	for _, name := range names {
		w, err := getWebhook(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if w != nil {
			m[name] = w
		}
	}
	ws.mu.Lock()
	if ws.gen == gen {
		ws.byName = m
	}
	ws.mu.Unlock()
	return m, nil
}

// loaded returns the receivers when they are loaded, nil when not: for
// callers that must not wait for storage.
func (ws *webhookSet) loaded() map[string]*webhookEntry {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.byName
}

// lockWrites serialises the writes and deletes of receivers, which are
// rare, so that a rotation cannot lose a concurrent one.
func (ws *webhookSet) lockWrites() (unlock func()) {
	ws.writeMu.Lock()
	return ws.writeMu.Unlock
}

// figuresEvery is how often at most a receiver's delivery figures are
// written while its attempts go on: the attempts that end meanwhile are
// counted together by the next write.
const figuresEvery = time.Second

// webhookFigures caches the receivers' stored delivery figures and orders
// their writes. A receiver's outcomes are queued and written by one
// flusher at a time (see deliveryWorker.flushFigures), at most once per
// figuresEvery, so that attempts neither wait for a write each nor cost
// one each.
type webhookFigures struct {
	// mu is held across a write, so that forget (before a receiver's
	// figures are deleted) waits for the write in flight.
	mu     sync.Mutex
	byName map[string]*webhookStats

	// queuedMu guards queued, flushing and written: the outcomes not yet
	// counted, the receivers whose figures a flusher writes, and when
	// each receiver's were last written.
	queuedMu sync.Mutex
	queued   map[string][]attemptOutcome
	flushing map[string]bool
	written  map[string]time.Time
}

// queue adds one attempt's outcome for receiver. start says that no
// flusher writes the receiver's figures: the caller starts one.
func (f *webhookFigures) queue(receiver string, o attemptOutcome) (start bool) {
	f.queuedMu.Lock()
	defer f.queuedMu.Unlock()
	if f.queued == nil {
		f.queued, f.flushing, f.written = map[string][]attemptOutcome{}, map[string]bool{}, map[string]time.Time{}
	}
	f.queued[receiver] = append(f.queued[receiver], o)
	if f.flushing[receiver] {
		return false
	}
	f.flushing[receiver] = true
	return true
}

// due is how long receiver's flusher waits before its next write.
func (f *webhookFigures) due(receiver string, now time.Time) time.Duration {
	f.queuedMu.Lock()
	defer f.queuedMu.Unlock()
	return f.written[receiver].Add(figuresEvery).Sub(now)
}

// take returns receiver's queued outcomes, marking them written at now;
// with none queued it ends the receiver's flusher (ok false).
func (f *webhookFigures) take(receiver string, now time.Time) (batch []attemptOutcome, ok bool) {
	f.queuedMu.Lock()
	defer f.queuedMu.Unlock()
	batch = f.queued[receiver]
	delete(f.queued, receiver)
	if len(batch) == 0 {
		delete(f.flushing, receiver)
		return nil, false
	}
	f.written[receiver] = now
	return batch, true
}

// store counts batch into receiver's figures and writes them once.
func (f *webhookFigures) store(ctx context.Context, s logical.Storage, receiver string, exists func() bool, batch []attemptOutcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !exists() {
		return nil
	}
	st := f.byName[receiver]
	if st == nil {
		var err error
		if st, err = getWebhookStats(ctx, s, receiver); err != nil {
			return err
		}
		if f.byName == nil {
			f.byName = map[string]*webhookStats{}
		}
		f.byName[receiver] = st
	}
	for _, o := range batch {
		st.LastAttemptAt, st.LastStatus, st.LastError = o.at, o.status, o.errText
		if o.delivered {
			st.Delivered++
			st.LastDeliveryAt = o.at
		} else {
			st.Failed++
		}
		if o.dead {
			st.Dead++
		}
	}
	return putJSON(ctx, s, webhookStatsPrefix+receiver, st)
}

// forget drops a receiver's cached figures and the outcomes not yet
// counted (deleted, or created anew).
func (f *webhookFigures) forget(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byName, name)
	f.queuedMu.Lock()
	delete(f.queued, name)
	delete(f.written, name)
	f.queuedMu.Unlock()
}

// attemptOutcome is what one delivery attempt gave.
type attemptOutcome struct {
	at              time.Time
	status          int
	errText         string
	delivered, dead bool
}
