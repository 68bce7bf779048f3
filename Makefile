# cfturn build targets. Everything runs with nothing but Go (and make): the code generator and the
# linter are pinned with tool directives in go.mod.

GO        ?= go
FUZZ_PKG  := ./pkg/turn
# Each fuzz target runs for a number of executions, not a duration: Go 1.26's fuzzing coordinator
# can fail a duration-bound run that found nothing when its deadline fires (golang/go#75804, fixed
# in Go 1.27), and a count has no deadline to race. The counts take about 10 s each on a 2-core CI
# machine. FUZZTIME=30s (or 1000000x) overrides them all for a longer local run.
FUZZ_TARGETS := FuzzDecodeEnvelope:120000x FuzzValidateIDs:150000x FuzzValidateTTL:180000x \
	FuzzErrorText:80000x FuzzBuiltURL:80000x FuzzCredentialCheck:60000x \
	FuzzExcerptHidesSecret:40000x
FUZZTIME  ?=

.PHONY: all generate check-generate lint test deps fuzz demo ci bench

all: ci

## generate: regenerate gen/ from openapi/calls.yaml and graphql/*.graphql
generate:
	$(GO) generate ./...

## check-generate: fail when gen/ does not match what openapi/calls.yaml and graphql/ generate (drift check)
check-generate: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit it" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has files not committed" >&2; exit 1; }

## lint: gofmt, go vet and staticcheck
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "files above need gofmt" >&2; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	cd bench && $(GO) vet ./...
	cd e2e && $(GO) vet ./...

## test: every test of the three modules, with the race detector (the README's test command).
## bench/ is a module of its own whose tests check the official Cloudflare SDK against the fake;
## e2e/ holds the WebRTC and browser tests (pion/webrtc, chromedp) through the fake's TURN relay.
## It runs `make deps` first. Tests that need redis-server or Chromium skip without them, except
## under CI (CI set), where they fail; a run that skipped anything ends with a loud list of what
## and why (internal/testsummary reads go test -json). -race needs cgo, so a C compiler: make deps
## installs gcc when there is none; without one, outside CI, the tests run without -race and say so.
RACE = $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && echo -race)
test: deps
	@if [ -z "$(RACE)" ]; then \
		if [ -n "$$CI" ]; then echo "test: -race needs cgo and a C compiler, and there is none: run make deps as root (it installs gcc)" >&2; exit 1; fi; \
		echo "test: WARNING: no C compiler, so the tests run WITHOUT the race detector (make deps installs gcc when run as root)" >&2; \
	fi
	@{ $(GO) test -json $(RACE) -count=1 ./... || echo "testsummary: failed: go test ./... (exit $$?)"; \
	  (cd bench && $(GO) test -json $(RACE) -count=1 ./...) || echo "testsummary: failed: go test in bench/ (exit $$?)"; \
	  (cd e2e && $(GO) test -json $(RACE) -count=1 ./...) || echo "testsummary: failed: go test in e2e/ (exit $$?)"; \
	} 2>&1 | $(GO) run ./internal/testsummary

## deps: install with apt what the tests start (redis-server, chromium-headless-shell, coturn,
## janus), what the README's snippets use (curl, jq) and, when there is no C compiler for -race,
## gcc; each only when missing. apt needs root: as another user it uses sudo when that works without
## a password, and otherwise says what to install (and fails under CI). Then npm ci installs the
## matrix-js-sdk the e2e Matrix tests run (e2e/matrixsdk/package-lock.json).
DEB_DEPS := redis-server:redis-server chromium-headless-shell:chromium-headless-shell curl:curl jq:jq
DEB_DEPS += turnserver:coturn
DEB_DEPS += janus:janus
deps:
	@missing=""; for d in $(DEB_DEPS); do \
		cmd=$${d%%:*}; pkg=$${d#*:}; \
		if [ "$$cmd" = chromium-headless-shell ] && { [ -n "$$CFTURN_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; }; then continue; fi; \
		command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	[ "$$($(GO) env CGO_ENABLED)" = 1 ] || missing="$$missing gcc libc6-dev"; \
	if [ -z "$$missing" ]; then echo "deps: all installed"; exit 0; fi; \
	sudo=""; \
	if [ "$$(id -u)" != 0 ]; then \
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else \
			echo "deps: missing$$missing, and installing needs root: run 'sudo make deps' or 'sudo apt-get install$$missing'" >&2; \
			[ -z "$$CI" ] || exit 1; exit 0; \
		fi; \
	fi; \
	echo "deps: installing$$missing"; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null
	@# matrix-js-sdk for the e2e Matrix tests, pinned by e2e/matrixsdk/package-lock.json
	@[ e2e/matrixsdk/node_modules/.package-lock.json -nt e2e/matrixsdk/package-lock.json ] \
		|| (cd e2e/matrixsdk && npm ci --no-audit --no-fund --loglevel=error)

## fuzz: run each fuzz target for its execution budget (or FUZZTIME); a finding fails and leaves
## its reproducer in pkg/turn/testdata/fuzz/
fuzz:
	@for spec in $(FUZZ_TARGETS); do \
		t=$${spec%%:*}; budget=$${spec#*:}; [ -z "$(FUZZTIME)" ] || budget=$(FUZZTIME); \
		echo "fuzz $$t ($$budget)"; \
		$(GO) test $(FUZZ_PKG) -run '^$$' -fuzz "^$$t\$$" -fuzztime $$budget || exit 1; \
	done

## demo: walk a key's life against the built-in fake
demo:
	$(GO) run ./cmd/cfturn demo

## ci: everything CI checks
ci: check-generate lint test fuzz demo

## bench: benchmarks against the floor and the official SDK; writes BENCHMARKS.md
BENCHCOUNT ?= 6
bench:
	cd bench && $(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 60m . | tee results.txt
	$(GO) test -run '^$$' -bench 'ServeICEMemory/default' -count 1 -timeout 10m ./cmd/cfturn | tee -a bench/results.txt
	cd bench && $(GO) run ./report -in results.txt -out ../BENCHMARKS.md
	@rm -f bench/results.txt
	@echo "wrote BENCHMARKS.md"
