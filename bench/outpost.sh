#!/usr/bin/env bash
# Starts Outpost the way ../shared/bench/run.sh expects (see its README):
# on 127.0.0.1:18070 in front of the origin on 127.0.0.1:18001. The harness
# pins this process to one core and sets GOMAXPROCS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
go build -o /tmp/outpost-bench ./cmd/outpost
exec /tmp/outpost-bench run -c bench/outpost.yaml
