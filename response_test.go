// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// httpError and respondError are the one place errors become statuses: the
// kind of an engineError decides (not the cause it wraps), the caller's
// mistakes are 4xx, a full quota 429, the provider's failures 424, and
// anything else stays an internal error.
func TestErrorsBecomeStatuses(t *testing.T) {
	refused := &engineError{kind: errProviderRefused, msg: "refused", cause: errConnectionNotFound}
	for _, tc := range []struct {
		err    error
		status int // 0: not a coded error
	}{
		{connectionNotFound("github", "c1"), http.StatusNotFound},
		{fmt.Errorf("reading: %w", connectionNotFound("github", "c1")), http.StatusNotFound},
		{&engineError{kind: errBadConnectionConfig, msg: "bad"}, http.StatusBadRequest},
		{&engineError{kind: errNotRefreshable, msg: "no"}, http.StatusBadRequest},
		{&engineError{kind: errNoTokens, msg: "no"}, http.StatusBadRequest},
		{errIntegrationGone, http.StatusBadRequest},
		{&errHasConnections{count: 2}, http.StatusBadRequest},
		{&pendingLimitError{"github", 10}, http.StatusTooManyRequests},
		{refused, http.StatusFailedDependency},
		{&engineError{kind: errProviderUnreachable, msg: "down"}, http.StatusFailedDependency},
		{&engineError{kind: errExpiredUnrefreshable, msg: "expired"}, http.StatusFailedDependency},
		{errors.New("storage unavailable"), 0},
	} {
		_, err := httpError(tc.err)
		var coded logical.HTTPCodedError
		switch {
		case tc.status == 0 && errors.As(err, &coded):
			t.Errorf("%v: coded %d, want an internal error", tc.err, coded.Code())
		case tc.status != 0 && (!errors.As(err, &coded) || coded.Code() != tc.status):
			t.Errorf("%v: %v, want %d", tc.err, err, tc.status)
		case err.Error() != tc.err.Error():
			t.Errorf("%v: message became %q", tc.err, err.Error())
		}
	}
}

func TestRespondErrorAnswersUserErrorsWith400(t *testing.T) {
	resp, err := respondError(badInput(errors.New("name is required")))
	if err != nil || resp == nil || !resp.IsError() || resp.Error().Error() != "name is required" {
		t.Fatalf("respondError(userError) = %v, %v", resp, err)
	}
	if _, err := respondError(connectionNotFound("github", "c1")); err == nil {
		t.Fatal("respondError dropped an engine error")
	}
}
