// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"testing"
)

// An engineError is its kind for errors.Is and unwraps to its cause, so a
// caller can test either; its message is its own, not the cause's.
func TestEngineErrorIsItsKindAndUnwrapsItsCause(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	err := error(&engineError{kind: errProviderUnreachable, msg: "the provider could not be reached", cause: cause})
	if !errors.Is(err, errProviderUnreachable) {
		t.Error("engineError is not its kind")
	}
	if errors.Is(err, errProviderRefused) {
		t.Error("engineError is another kind")
	}
	if !errors.Is(err, cause) {
		t.Error("engineError does not unwrap to its cause")
	}
	if err.Error() != "the provider could not be reached" {
		t.Errorf("message = %q", err.Error())
	}
}

func TestConnectionNotFoundNamesTheConnection(t *testing.T) {
	err := connectionNotFound("github", "acme")
	if !errors.Is(err, errConnectionNotFound) {
		t.Fatal("not errConnectionNotFound")
	}
	if want := `connection "acme" of integration "github" does not exist`; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
}

func TestBadInputIsAUserError(t *testing.T) {
	var ue *userError
	if err := badInput(errors.New("name is required")); !errors.As(err, &ue) || ue.msg != "name is required" {
		t.Errorf("badInput = %#v", err)
	}
}
