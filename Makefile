# cfturn build targets. Everything runs with nothing but Go (and make): the code generator and the
# linter are pinned with tool directives in go.mod.

GO        ?= go
FUZZTIME  ?= 10s
FUZZ_PKG  := ./pkg/turn
FUZZ_TARGETS := FuzzDecodeEnvelope FuzzValidateIDs FuzzValidateTTL FuzzErrorText FuzzRouteMatchesBuilder

.PHONY: all generate check-generate lint test fuzz demo ci bench

all: ci

## generate: regenerate gen/ from openapi/calls.yaml
generate:
	$(GO) generate ./...

## check-generate: fail when gen/ does not match what openapi/calls.yaml generates (drift check)
check-generate: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit it" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has files not committed" >&2; exit 1; }

## lint: gofmt, go vet and staticcheck
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "files above need gofmt" >&2; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	cd bench && $(GO) vet ./...

## test: every test, with the race detector (the README's test command); bench/ is a module of its
## own, whose tests check the official Cloudflare SDK against the fake
test:
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) test -race -count=1 ./...

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t ($(FUZZTIME))"; \
		$(GO) test $(FUZZ_PKG) -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

## demo: walk a key's life against the built-in fake
demo:
	$(GO) run ./cmd/cfturn demo

## ci: everything CI checks
ci: check-generate lint test fuzz

## bench: benchmarks against the floor and the official SDK; writes BENCHMARKS.md
BENCHCOUNT ?= 6
bench:
	cd bench && $(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 60m . | tee results.txt
	$(GO) test -run '^$$' -bench 'ServeICEMemory/default' -count 1 -timeout 10m ./cmd/cfturn | tee -a bench/results.txt
	cd bench && $(GO) run ./report -in results.txt -out ../BENCHMARKS.md
	@rm -f bench/results.txt
	@echo "wrote BENCHMARKS.md"
