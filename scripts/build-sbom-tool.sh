#!/usr/bin/env bash
# Builds CycloneDX's cyclonedx-gomod, pinned in the scripts/sbom tools
# module, into bin/cyclonedx-gomod: the SBOM generator of scripts/release.sh.
# Rebuilt only when the tools module changes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bin/cyclonedx-gomod
want=$(cat scripts/sbom/go.mod scripts/sbom/go.sum | sha256sum | cut -d' ' -f1)
if [[ -x $out && -f $out.stamp && $(cat "$out.stamp") == "$want" ]]; then
  exit 0
fi
echo "building $out from scripts/sbom..." >&2
mkdir -p bin
(cd scripts/sbom && go build -trimpath -o "$OLDPWD/$out" github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod)
echo "$want" >"$out.stamp"
