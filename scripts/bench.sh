#!/usr/bin/env bash
# make bench: the engine's benchmarks, each printed with its target. Not part
# of make test: they take minutes and measure, rather than check, the machine.
#  - in process: storage operations of an idle tick with 100,000 connections,
#    token requests of a 100-reader stampede, drain time of 1,000 due
#    connections against its bound, a connection write with and without a
#    webhook receiver (the cost of recording an event), the delivery rate;
#  - on integrated storage (Raft): writes with a receiver against writes
#    without, with each process's CPU per write, and a backlog's delivery;
#  - through a real Vault: read throughput against KV-v2 builtin and external,
#    the proxy (a GET straight, a plain read and the GET through the proxy, at
#    1 and 32 clients), and plugin start with 100,000 stored connections.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-vault.sh
scripts/build-plugin.sh
# The external KV-v2 plugin to compare with: HashiCorp's KV at the version
# Vault itself pins, served by scripts/vault/kvv2 (no new dependency).
(cd scripts/vault && GONOSUMDB=github.com/hashicorp go build -o ../../bin/plugins/vault-plugin-secrets-kv ./kvv2)
# The read ceiling: a do-nothing plugin answering a connection read's fields.
CGO_ENABLED=0 go build -o bin/plugins/connect-ceiling ./scripts/bench/ceiling

# make bench-scale: the scale benchmarks at 10,000 to 1,000,000 connections,
# in process and on integrated storage, written to docs/performance.md.
if [ "${1:-}" = "--scale" ]; then
  shift
  exec go run ./scripts/bench -scale -vault bin/vault -plugins bin/plugins "$@"
fi

echo "== in-process benchmarks (go test -bench)"
CONNECT_SCALE_SIZES=100000 go test -run '^$' -bench 'ScaleIdleTick|Stampede100|Drain1000' -benchtime 3x -count 1 .
# The cost of an event on a connection write: many writes, so the ratio is
# not noise.
go test -run '^$' -bench 'EventOnConnectionWrite' -benchtime 5000x -count 1 .
# Delivery: a receiver answering in 100 ms (concurrency 16 and 64) and one
# answering at once.
go test -run '^$' -bench 'EventDeliveryRate' -benchtime 1x -count 1 .

echo
echo "== events on integrated storage: writes with a receiver against without, a backlog drained"
go run ./scripts/bench -events -vault bin/vault -plugins bin/plugins

# The proxy's handler in process: a proxied GET against the direct GET and a
# plain read, CPU per call and new connections per call.
go test -run '^$' -bench 'ProxyGet' -benchtime 20000x -count 1 .

echo
echo "== through a real Vault"
go run ./scripts/bench -vault bin/vault -plugins bin/plugins "$@"
