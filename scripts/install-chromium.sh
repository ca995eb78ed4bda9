#!/usr/bin/env bash
# Makes sure a Chromium the browser tests (e2e/connect_page_test.go) can
# drive is on this machine, and prints its path. When none is found it
# installs Debian's `chromium` package where apt-get is available and we are
# root (as on CI); anywhere else it fails, naming the package to install.
# CHROMIUM_BIN names a browser elsewhere; the tests read the same variable.
set -euo pipefail

if [[ -n ${CHROMIUM_BIN:-} ]]; then
  if [[ -x $CHROMIUM_BIN && ! -d $CHROMIUM_BIN ]]; then
    echo "$CHROMIUM_BIN"
    exit 0
  fi
  echo "install-chromium: CHROMIUM_BIN=$CHROMIUM_BIN is not an executable file" >&2
  exit 1
fi

find_chromium() {
  local c
  for c in chromium /usr/bin/chromium; do
    if command -v "$c" >/dev/null 2>&1; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}

if path=$(find_chromium); then
  echo "$path"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || [[ $(id -u) != 0 ]]; then
  echo "install-chromium: no Chromium found (chromium, /usr/bin/chromium) and it cannot be installed here" >&2
  echo "(that needs apt-get and root). Install Debian's 'chromium' package, or your system's Chromium" >&2
  echo "and set CHROMIUM_BIN to it; the browser tests in make test need it." >&2
  exit 1
fi

echo "install-chromium: installing Debian's chromium package..." >&2
export DEBIAN_FRONTEND=noninteractive
# Without a fresh package list the install may not find the package or an
# old version's files; update only then, as it is the slow part.
if ! apt-get install -y -q chromium >&2; then
  apt-get update -q >&2
  apt-get install -y -q chromium >&2
fi

if path=$(find_chromium); then
  echo "$path"
  exit 0
fi
echo "install-chromium: the chromium package is installed but no chromium command was found" >&2
exit 1
