#!/usr/bin/env bash
# Builds a release into dist/ (or OUT): the plugin for each platform (CGO
# off, -trimpath, no build id or VCS stamp, so that two builds of one commit
# are byte-identical), a zip per platform named as HashiCorp's releases are,
# SHA256SUMS over the zips and one over the bare binaries (the value
# `vault plugin register -sha256` takes), a CycloneDX SBOM per platform, and
# the release notes: CHANGELOG.md's top released section.
#
#   scripts/release.sh                 the version of CHANGELOG.md's top released
#                                      section, from a clean tree with nothing
#                                      under [Unreleased]
#   SNAPSHOT=1 scripts/release.sh      v0.0.0-dev+<commit>, notes from [Unreleased],
#                                      any tree: for trying the release out
#
# PLATFORMS (default: the four below), OUT (default: dist) and SBOM_TOOL (a
# built cyclonedx-gomod) may be set; scripts/reproducible.sh sets them.
set -euo pipefail
cd "$(dirname "$0")/.."

name=vault-plugin-secrets-connect
pkg=github.com/connect-vault/vault-plugin-secrets-connect
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
OUT=${OUT:-dist}

die() { echo "release: $*" >&2; exit 1; }

# section NAME prints the body of CHANGELOG.md's "## [NAME]" section.
section() {
  awk -v want="$1" '
    /^## \[/ { inside = (index($0, "## [" want "]") == 1); next }
    inside' CHANGELOG.md
}

# top_release prints the version of the first "## [x.y.z] - date" section.
top_release() {
  sed -nE 's/^## \[([0-9]+\.[0-9]+\.[0-9]+[^]]*)\] - [0-9]{4}-[0-9]{2}-[0-9]{2}.*$/\1/p' CHANGELOG.md | head -n1
}

commit=$(git rev-parse --short=12 HEAD)
if [[ ${SNAPSHOT:-0} == 1 ]]; then
  dirty=""
  [[ -z $(git status --porcelain) ]] || dirty=.dirty
  version="v0.0.0-dev+$commit$dirty"
  notes=$(section Unreleased)
else
  [[ -z $(git status --porcelain) ]] ||
    die "the tree has uncommitted changes or untracked files; commit or remove them (or SNAPSHOT=1 for a trial build)"
  [[ -z $(section Unreleased | grep -v '^[[:space:]]*$' || true) ]] ||
    die "CHANGELOG.md has entries under [Unreleased]: move them under a new '## [x.y.z] - $(date -u +%F)' heading first (docs/upgrading.md, Releasing)"
  top=$(top_release)
  [[ -n $top ]] || die "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' section"
  version="v$top"
  notes=$(section "$top")
fi
[[ -n $(echo "$notes" | grep -v '^[[:space:]]*$' || true) ]] || die "the release notes for $version are empty"
bare=${version#v}

# Every timestamp in the artefacts is the commit's, so that a rebuild of the
# same commit gives the same bytes.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}
export CGO_ENABLED=0 TZ=UTC LC_ALL=C
# Nothing from the caller's Go environment changes the build: every flag is
# given below, the instruction-set levels are Go's defaults, and the
# installed toolchain builds (its version is in the notes).
export GOFLAGS= GOAMD64=v1 GOARM64=v8.0 GOEXPERIMENT= GOTOOLCHAIN=local

# The SBOM generator, pinned in the scripts/sbom tools module.
if [[ -z ${SBOM_TOOL:-} ]]; then
  scripts/build-sbom-tool.sh
  SBOM_TOOL=bin/cyclonedx-gomod
fi

case $(realpath -m "$OUT") in
  / | "$HOME" | "$PWD" | "$PWD"/bin | "$PWD"/scripts*) die "OUT=$OUT would remove more than a release" ;;
esac
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "release $version ($commit) into $OUT/" >&2
for platform in $PLATFORMS; do
  os=${platform%/*} arch=${platform#*/}
  dir="$OUT/${os}_${arch}"
  mkdir -p "$dir"
  GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false \
    -ldflags "-buildid= -X $pkg.version=$version" \
    -o "$dir/$name" ./cmd/$name

  # The zip holds the binary and the licence, with fixed modes and times,
  # no extra attributes (-X: no uid, gid or extended times) and no
  # directory entries (-D).
  stage=$(mktemp -d)
  cp "$dir/$name" "$stage/$name"
  cp LICENSE "$stage/LICENSE"
  chmod 0755 "$stage/$name"
  chmod 0644 "$stage/LICENSE"
  touch -d "@$SOURCE_DATE_EPOCH" "$stage/$name" "$stage/LICENSE"
  zip="${name}_${bare}_${os}_${arch}.zip"
  (cd "$stage" && zip -q -X -D -9 "$OUT/$zip" "$name" LICENSE)
  rm -rf "$stage"

  # The SBOM of exactly this binary, from the module list the Go linker
  # embedded in it, with the binary's hashes; no serial number or
  # timestamp, which would differ per run. No -licenses: its detection
  # downloads modules missing from the cache, so the SBOM would depend on
  # the network.
  "$SBOM_TOOL" bin -json -noserial -notimestamp -version "$version" \
    -output "$OUT/${name}_${bare}_${os}_${arch}.sbom.cdx.json" "$dir/$name"
  echo "  $platform: $(stat -c %s "$dir/$name") bytes, zip $(stat -c %s "$OUT/$zip") bytes" >&2
done

(cd "$OUT" && sha256sum -- *.zip >"${name}_${bare}_SHA256SUMS")
(cd "$OUT" && sha256sum -- */"$name" >"${name}_${bare}_binaries_SHA256SUMS")
printf '# %s %s\n\nBuilt from commit %s with %s.\n\n%s\n' "$name" "$version" "$commit" "$(go env GOVERSION)" "$notes" \
  >"$OUT/${name}_${bare}_RELEASE_NOTES.md"

# The sums check out, and each zip holds exactly the bare binary summed.
(cd "$OUT" && sha256sum --quiet -c "${name}_${bare}_SHA256SUMS" && sha256sum --quiet -c "${name}_${bare}_binaries_SHA256SUMS") ||
  die "a checksum does not match its file"
for platform in $PLATFORMS; do
  os=${platform%/*} arch=${platform#*/}
  zipped=$(unzip -p "$OUT/${name}_${bare}_${os}_${arch}.zip" "$name" | sha256sum | cut -d' ' -f1)
  grep -qx "$zipped  ${os}_${arch}/$name" "$OUT/${name}_${bare}_binaries_SHA256SUMS" ||
    die "the binary in the $platform zip is not the one in the binaries' SHA256SUMS"
done
echo "built in $(( $(date +%s) - start ))s:" >&2
ls -l "$OUT" >&2
