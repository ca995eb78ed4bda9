// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Token request parameters may depend on the customer too: Auth0's client
// credentials grant wants audience=${connectionConfig.audience}. A value is
// text with ${connectionConfig.<key>} placeholders, filled from one
// connection's config before every token request of that connection (the
// client credentials grant, the code exchange, refreshes).

// maxParamValueRunes bounds a filled-in placeholder of a parameter: an
// audience or resource URI is far shorter; megabytes are a mistake or an
// attack on the provider's logs.
const maxParamValueRunes = 1024

// ValidateParamTemplates checks the values of a parameter map (field is
// token_params or refresh_params): the only placeholders are
// ${connectionConfig.<key>}, named in the error when another is used.
func ValidateParamTemplates(field string, params map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if err := foreignPlaceholder(field+"."+name, params[name]); err != nil {
			return err
		}
	}
	return nil
}

// ParamPlaceholders lists, sorted, the connection config keys the values
// of params use: keys every connection of the integration must have.
func ParamPlaceholders(params map[string]string) []string {
	set := map[string]bool{}
	for _, v := range params {
		for _, k := range Placeholders(v) {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// ExpandParams fills the placeholders of params from one connection's
// config. A key the config lacks is a ConfigError naming it; so is a value
// that is not printable text of at most maxParamValueRunes (a CR or LF
// could split a request's body or headers in a JSON-less encoder, and
// nothing a provider documents for these values needs one). The error
// never quotes the value, which may be secret.
func ExpandParams(field string, params map[string]string, cfg map[string]any) (map[string]string, error) {
	if len(params) == 0 {
		return params, nil
	}
	out := make(map[string]string, len(params))
	for _, name := range slices.Sorted(maps.Keys(params)) {
		v, err := expandParam(field+"."+name, params[name], cfg)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

// CheckParamValues checks the values cfg gives the placeholders of params,
// leaving out keys cfg lacks: the check of a connection config write,
// which may come before the keys a later request needs.
func CheckParamValues(field string, params map[string]string, cfg map[string]any) error {
	for _, name := range slices.Sorted(maps.Keys(params)) {
		for _, key := range Placeholders(params[name]) {
			v, ok := configText(cfg, key)
			if !ok {
				continue
			}
			if err := checkParamValue(field+"."+name, key, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func expandParam(field, tmpl string, cfg map[string]any) (string, error) {
	var firstErr error
	out := placeholderRe.ReplaceAllStringFunc(tmpl, func(m string) string {
		key := placeholderRe.FindStringSubmatch(m)[1]
		v, ok := configText(cfg, key)
		err := checkParamValue(field, key, v)
		if !ok {
			err = &ConfigError{fmt.Sprintf("connection_config.%s is required: %s uses it", key, field)}
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	})
	if firstErr != nil {
		return "", firstErr
	}
	return out, nil
}

// configText is a config value as text, and whether it is set at all.
func configText(cfg map[string]any, key string) (string, bool) {
	raw, ok := cfg[key]
	if !ok || raw == nil {
		return "", false
	}
	v := fmt.Sprint(raw)
	return v, v != ""
}

func checkParamValue(field, key, v string) error {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxParamValueRunes || strings.IndexFunc(v, notPrintable) >= 0 {
		return &ConfigError{fmt.Sprintf("connection_config.%s must be printable text of at most %d characters to be used in %s", key, maxParamValueRunes, field)}
	}
	return nil
}

// notPrintable is a control or other non-graphic character; a space is
// fine.
func notPrintable(r rune) bool {
	return r != ' ' && !unicode.IsGraphic(r)
}
