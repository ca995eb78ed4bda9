package connect

import (
	"fmt"
	"regexp"
	"strings"
)

// Provider URLs may depend on the customer: Zendesk's token endpoint is
// https://${connectionConfig.subdomain}.zendesk.com/oauth/tokens. The
// placeholders are filled from the connection's configuration when the URL is
// used (authorize, callback, refresh, revocation).

var (
	placeholderRe = regexp.MustCompile(`\$\{connectionConfig\.([A-Za-z0-9_]+)\}`)
	// A value goes into a host name or a path segment. Anything that could
	// end the host or start a path, query or user-info (/ ? # @ :) would let
	// a connection's configuration send the client secret elsewhere.
	placeholderValueRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)
)

// badConfigError is a connection configuration that cannot fill a URL: the
// caller's input, so a 400.
type badConfigError struct{ msg string }

func (e *badConfigError) Error() string { return e.msg }

// expandURL fills the placeholders of tmpl from cfg.
func expandURL(field, tmpl string, cfg map[string]any) (string, error) {
	var firstErr error
	out := placeholderRe.ReplaceAllStringFunc(tmpl, func(m string) string {
		key := placeholderRe.FindStringSubmatch(m)[1]
		raw, ok := cfg[key]
		if !ok || raw == nil || fmt.Sprint(raw) == "" {
			if firstErr == nil {
				firstErr = &badConfigError{fmt.Sprintf("connection_config.%s is required: %s uses it", key, field)}
			}
			return ""
		}
		val := fmt.Sprint(raw)
		if !placeholderValueRe.MatchString(val) {
			if firstErr == nil {
				firstErr = &badConfigError{fmt.Sprintf("connection_config.%s must be letters, digits, '.', '_' or '-' to be used in %s", key, field)}
			}
			return ""
		}
		return val
	})
	if firstErr != nil {
		return "", firstErr
	}
	return out, nil
}

// validateURLTemplate checks a URL that may hold placeholders: each must be
// well formed, and the URL must be absolute once they are filled.
func validateURLTemplate(field, tmpl string) error {
	stripped := placeholderRe.ReplaceAllString(tmpl, "")
	if strings.Contains(stripped, "${") {
		return fmt.Errorf("%s has a placeholder other than ${connectionConfig.<key>}", field)
	}
	sample := placeholderRe.ReplaceAllString(tmpl, "x")
	return validateAbsoluteURL(field, sample)
}

// endpoints are an integration's URLs with one connection's configuration
// filled in.
type endpoints struct {
	auth, token, revocation, apiBase string
}

func resolveEndpoints(in *integrationEntry, cfg map[string]any) (endpoints, error) {
	var ep endpoints
	for _, u := range []struct {
		field, tmpl string
		dst         *string
	}{
		{"auth_url", in.AuthURL, &ep.auth},
		{"token_url", in.TokenURL, &ep.token},
		{"revocation_url", in.RevocationURL, &ep.revocation},
		{"api_base_url", in.APIBaseURL, &ep.apiBase},
	} {
		if u.tmpl == "" {
			continue
		}
		v, err := expandURL(u.field, u.tmpl, cfg)
		if err != nil {
			return endpoints{}, err
		}
		*u.dst = v
	}
	return ep, nil
}
