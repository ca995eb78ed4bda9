#!/usr/bin/env bash
# Runs every fuzz target for the given time each (default 3s): make test
# runs them briefly, make fuzz for longer (FUZZTIME=2m make fuzz).
# Failing inputs are written to testdata/fuzz/<target>/ and then replay as
# seeds in every go test run; commit them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-3s}
for pkg in . ./internal/provider; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    echo "fuzz $pkg $target ($time)"
    # Go's fuzzer can end a short run with a bare "context deadline
    # exceeded" when the time runs out mid-input (no failing input is
    # written then): that run is repeated once. A real failure writes its
    # input under testdata/fuzz and fails either way.
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" > /tmp/fuzz-$$.log 2>&1; then
      if grep -q 'context deadline exceeded' /tmp/fuzz-$$.log && ! grep -q 'Failing input written' /tmp/fuzz-$$.log; then
        echo "  (deadline hit mid-input, running again)"
        go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" > /tmp/fuzz-$$.log 2>&1 || { cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1; }
      else
        cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1
      fi
    fi
    grep -E '^(ok|PASS|FAIL)' /tmp/fuzz-$$.log | tail -1
  done
done
rm -f /tmp/fuzz-$$.log
