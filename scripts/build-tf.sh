#!/usr/bin/env bash
# Builds OpenTofu and the Terraform Vault provider from their Go modules
# (scripts/tofu, scripts/terraform-provider-vault) into bin/, for the
# Terraform end-to-end test. Neither has a download this project can reach.
# Each binary is rebuilt only when its tools module changes; a cold build of
# both takes about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export GONOSUMDB=github.com/opentofu,github.com/hashicorp GOFLAGS=-mod=mod

# build NAME MODULE_DIR PACKAGE OUTPUT [go build flags...]
build() {
  local name=$1 dir=$2 pkg=$3 out=$4
  shift 4
  local stamp=$out.stamp
  local want
  want=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -d' ' -f1)
  if [[ -x $out && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return 0
  fi
  echo "building $name from $dir..." >&2
  mkdir -p "$(dirname "$out")"
  local start
  start=$(date +%s)
  (cd "$dir" && go build "$@" -o "$OLDPWD/$out" "$pkg")
  echo "$want" > "$stamp"
  echo "built $out in $(( $(date +%s) - start ))s" >&2
}

build OpenTofu scripts/tofu github.com/opentofu/opentofu/cmd/tofu bin/tofu \
  -ldflags "-X github.com/opentofu/opentofu/version.dev=no"
build "the Terraform Vault provider" scripts/terraform-provider-vault \
  github.com/hashicorp/terraform-provider-vault bin/tf-providers/terraform-provider-vault
