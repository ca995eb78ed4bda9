#!/usr/bin/env bash
# The fast checks behind `make check`: formatting, vet, go.mod tidy,
# staticcheck (pinned in scripts/staticcheck) and the unit tests without
# -race. The end-to-end tests skip here (they need CONNECT_E2E=1 and a
# Vault); `make test` runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "== $*" >&2; }

step gofmt
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n $unformatted ]]; then
  echo "gofmt needed (run make fmt):" >&2
  echo "$unformatted" >&2
  exit 1
fi

step go vet
go vet ./...

step go mod tidy
# Tidy a copy so a failing check leaves the tree as it was.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp/"
go mod tidy
if ! cmp -s go.mod "$tmp/go.mod" || ! cmp -s go.sum "$tmp/go.sum"; then
  diff -u "$tmp/go.mod" go.mod >&2 || true
  cp "$tmp/go.mod" "$tmp/go.sum" .
  echo "go.mod or go.sum is not tidy: run go mod tidy and commit the result" >&2
  exit 1
fi

step staticcheck
bin=bin/staticcheck
stamp=$bin.stamp
want=$(cat scripts/staticcheck/go.mod scripts/staticcheck/go.sum | sha256sum | cut -d' ' -f1)
if [[ ! -x $bin || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  mkdir -p bin
  (cd scripts/staticcheck && go build -o ../../$bin honnef.co/go/tools/cmd/staticcheck)
  echo "$want" > "$stamp"
fi
$bin ./...

step unit tests
go test -count=1 ./...
