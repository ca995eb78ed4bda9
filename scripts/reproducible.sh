#!/usr/bin/env bash
# Shows that a release build is reproducible: builds the release of HEAD for
# one platform (PLATFORM, default linux/amd64) twice, from two checkouts at
# different paths, the second with an empty Go build cache, and compares
# every artefact byte for byte (binary, zip, SBOM, checksums, notes).
# Builds HEAD as committed, as a snapshot (v0.0.0-dev+<commit>); takes a
# cold compile of the plugin and its dependencies, minutes on a busy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PLATFORM=${PLATFORM:-linux/amd64}
commit=$(git rev-parse --short=12 HEAD) # both builds are of it, should HEAD move meanwhile

work=$(mktemp -d)
cleanup() {
  git worktree remove --force "$work/one/src" 2>/dev/null || true
  git worktree remove --force "$work/second-checkout/src" 2>/dev/null || true
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The SBOM generator is built once, here, for both builds.
scripts/build-sbom-tool.sh
tool=$PWD/bin/cyclonedx-gomod

build() { # build DIR [env...]
  local dir=$1
  shift
  mkdir -p "$dir"
  git worktree add --quiet --detach "$dir/src" "$commit"
  (cd "$dir/src" && env "$@" SNAPSHOT=1 PLATFORMS="$PLATFORM" OUT="$dir/dist" SBOM_TOOL="$tool" scripts/release.sh)
}

start=$(date +%s)
build "$work/one"
build "$work/second-checkout" GOCACHE="$work/gocache"
if ! diff -r "$work/one/dist" "$work/second-checkout/dist"; then
  echo "reproducible: the two builds of $commit differ" >&2
  exit 1
fi
echo "reproducible: two builds of $commit for $PLATFORM are byte-identical ($(cd "$work/one/dist" && find . -type f | wc -l) files, $(( $(date +%s) - start ))s)"
