// SPDX-License-Identifier: MPL-2.0

package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sender limits.
const (
	// DefaultTimeout bounds one attempt, from connecting to the end of
	// the response body.
	DefaultTimeout = 10 * time.Second
	// MaxResponseBody is how much of a receiver's answer is read (and
	// discarded), so that the connection can be reused without letting a
	// receiver stream for ever.
	MaxResponseBody = 64 << 10
	// MaxErrorText bounds the error text a result carries.
	maxErrorText = 200
)

// CheckURL says whether url may receive events: an absolute https URL, or
// http to a loopback host (a receiver on the same machine). It is checked
// when a receiver is written and again before every attempt. Its error
// names the rule, not the URL, whose query may hold a token.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return errors.New("url must be an absolute https URL")
	}
	if u.User != nil {
		return errors.New("url must not hold a user name or password")
	}
	if u.Fragment != "" {
		return errors.New("url must not hold a fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("url must use https; http is allowed only to a loopback host (localhost, 127.0.0.0/8, ::1)")
	default:
		return errors.New("url must use https")
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Message is one attempt to deliver one event to one receiver.
type Message struct {
	URL string
	// ID is the event's id: the webhook-id header, the same on every
	// attempt so that receivers can drop duplicates.
	ID string
	// Body is the event, sent unchanged on every attempt.
	Body []byte
	// Keys are the HMAC keys to sign with (the current secret's, and the
	// previous one's during a rotation).
	Keys [][]byte
}

// Result is what one attempt gave. Err is nil exactly when the receiver
// answered 2xx; its text holds neither a secret, the URL, nor the
// receiver's body.
type Result struct {
	// Status is the receiver's HTTP status, 0 when it gave none.
	Status int
	Err    error
}

// Sender posts messages to receivers.
type Sender struct {
	client *http.Client
	// Now is the clock of webhook-timestamp.
	Now func() time.Time
	// UserAgent is sent with every attempt.
	UserAgent string
}

// MaxIdleConnsPerHost is how many connections to one receiver the default
// transport keeps alive between attempts: as many as the most attempts the
// plugin makes to one receiver at once (a receiver's concurrency), so that
// none has to connect anew.
const MaxIdleConnsPerHost = 64

// NewSender returns a sender whose attempts last at most timeout and
// follow no redirect. transport nil means a fresh http.Transport.
func NewSender(timeout time.Duration, transport http.RoundTripper) *Sender {
	if transport == nil {
		transport = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: timeout,
			MaxIdleConnsPerHost: MaxIdleConnsPerHost,
			IdleConnTimeout:     90 * time.Second,
		}
	}
	return &Sender{
		client: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			// A redirect is an answer, not a place to send a signed
			// event: it counts as a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Now:       time.Now,
		UserAgent: "vault-plugin-secrets-connect",
	}
}

// Send makes one attempt. It signs the message for this attempt's
// timestamp, reads at most MaxResponseBody of the answer and discards it.
func (s *Sender) Send(ctx context.Context, m Message) Result {
	if err := CheckURL(m.URL); err != nil {
		return Result{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Result{Err: errors.New("building the request failed")}
	}
	now := s.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.UserAgent)
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(m.Keys, m.ID, now, m.Body))
	resp, err := s.client.Do(req)
	if err != nil {
		return Result{Err: transportError(err)}
	}
	// The body is only drained, so that the connection can be reused; a
	// broken body after a 2xx status does not undo the acceptance.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Result{Status: resp.StatusCode, Err: fmt.Errorf("receiver answered %d", resp.StatusCode)}
	}
	return Result{Status: resp.StatusCode}
}

// transportError describes a failed request without its URL (url.Error
// quotes it, and a receiver's URL may carry a token in its query).
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("no answer within the timeout")
		}
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	return errors.New("request failed: " + msg)
}
