#!/usr/bin/env bash
# The test suite: formatting, vet, unit and end-to-end tests, the race
# detector on the concurrent packages, and the fuzz seed corpora (which run
# as ordinary tests). Installs the system packages the end-to-end tests use.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=$PATH:/usr/local/go/bin

need=()
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium) # the bot challenge is solved by a real browser
if [ ${#need[@]} -gt 0 ]; then
	# A tool the tests need and cannot have fails the run: a skipped test
	# would hide a broken feature.
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The HTTP/2 conformance suite (e2e/h2spec_test.go fails without it).
# v2.2.1 is the newest release, on the module proxy as +incompatible.
if ! command -v h2spec >/dev/null && [ ! -x "$(go env GOPATH)/bin/h2spec" ]; then
	go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
fi
# The browser tests (the bot challenge, the Fiddle and status pages) fail
# without Chromium; say so here rather than in the middle of the e2e run.
if [ ! -x /usr/bin/chromium ]; then echo "test.sh: /usr/bin/chromium is missing after install" >&2; exit 1; fi
# Screenshots of the Fiddle and the status page (e2e/browser_test.go).
export OUTPOST_ARTIFACTS=${OUTPOST_ARTIFACTS:-$(mktemp -d -t outpost-artifacts.XXXXXX)}
echo "== screenshots go to $OUTPOST_ARTIFACTS"

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
# The library is the root module; the end-to-end tests are a module of
# their own (e2e/go.mod), so that what only they use (gRPC, WebSocket, the
# GeoIP writer) is not required by the library.
for mod in . e2e; do
	echo "== go vet ($mod)"
	(cd "$mod" && go vet ./...)
done
for mod in . e2e; do
	echo "== go test ($mod)"
	(cd "$mod" && go test -count=1 -timeout 10m ./...)
done
echo "== go test -race (concurrent packages)"
go test -count=1 -race -timeout 10m $(go list ./... | grep -E '/(server|proxy|cache|storage|evict|pool|client|upstream|limit|node|purge|edge|fiddle|cluster|h2|h3|transform)(/|$)')
(cd e2e && go test -count=1 -race -timeout 10m ./...)
