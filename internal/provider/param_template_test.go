// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateParamTemplatesAllowsOnlyConnectionConfig(t *testing.T) {
	ok := map[string]string{"audience": "https://${connectionConfig.tenant}.example.com/api", "plain": "x"}
	if err := ValidateParamTemplates("token_params", ok); err != nil {
		t.Fatalf("connectionConfig placeholders refused: %v", err)
	}
	bad := map[string]string{"resource": "${credentials.client_secret}"}
	err := ValidateParamTemplates("token_params", bad)
	if err == nil || !strings.Contains(err.Error(), "token_params.resource") {
		t.Fatalf("a placeholder other than connectionConfig must be refused naming the parameter, got %v", err)
	}
}

func TestParamPlaceholdersAreSortedAndUnique(t *testing.T) {
	got := ParamPlaceholders(map[string]string{
		"a": "${connectionConfig.zone}-${connectionConfig.tenant}",
		"b": "${connectionConfig.tenant}",
	})
	if strings.Join(got, ",") != "tenant,zone" {
		t.Fatalf("ParamPlaceholders = %v, want [tenant zone]", got)
	}
}

func TestExpandParamsFillsFromTheConnectionsConfig(t *testing.T) {
	params := map[string]string{"audience": "https://${connectionConfig.tenant}.example.com/api"}
	got, err := ExpandParams("token_params", params, map[string]any{"tenant": "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got["audience"] != "https://acme.example.com/api" {
		t.Fatalf("audience = %q", got["audience"])
	}
	if params["audience"] != "https://${connectionConfig.tenant}.example.com/api" {
		t.Fatal("ExpandParams changed the integration's templates")
	}
}

func TestExpandParamsRefusesMissingAndUnprintableValuesWithoutQuotingThem(t *testing.T) {
	params := map[string]string{"audience": "${connectionConfig.tenant}"}
	_, err := ExpandParams("token_params", params, map[string]any{})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "connection_config.tenant is required") {
		t.Fatalf("a missing key must be a ConfigError naming it, got %v", err)
	}
	for name, v := range map[string]string{
		"newline":   "acme\r\nX-Injected: 1",
		"too long":  strings.Repeat("a", maxParamValueRunes+1),
		"bad utf-8": "acme\xff",
	} {
		_, err := ExpandParams("token_params", params, map[string]any{"tenant": v})
		if !errors.As(err, &ce) {
			t.Fatalf("%s: want a ConfigError, got %v", name, err)
		}
		if strings.Contains(err.Error(), "acme") || strings.Contains(err.Error(), "aaaa") {
			t.Fatalf("%s: the error quotes the value: %v", name, err)
		}
	}
}

func TestCheckParamValuesSkipsKeysTheConfigLacks(t *testing.T) {
	params := map[string]string{"audience": "${connectionConfig.tenant}", "resource": "${connectionConfig.zone}"}
	if err := CheckParamValues("token_params", params, map[string]any{"zone": "eu"}); err != nil {
		t.Fatalf("a config without every key is fine at write time: %v", err)
	}
	if err := CheckParamValues("token_params", params, map[string]any{"zone": "eu\n"}); err == nil {
		t.Fatal("an unprintable value of a key the config has must be refused")
	}
}
