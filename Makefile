# snapshotter build. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# -E: snap's entry point takes a pool member before Go starts
# (cmd/snapshotter/internal/fasttake); a build without it works, slower.
LDFLAGS := -X main.version=$(VERSION) -E=_rt0_snap
# Test timeout for the whole suite (the budget is 20 minutes on 2 cores).
TEST_TIMEOUT ?= 18m
FUZZTIME ?= 10s

.PHONY: help build test generate check-generated lint fuzz-short bench demo clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-16s %s\n", $$1, $$2}'

build: ## build bin/snap and its S3 helper bin/snap-s3
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/snap ./cmd/snapshotter
	CGO_ENABLED=0 $(GO) build -o bin/snap-s3 ./cmd/snap-s3

generate: ## regenerate the stateify serializers, docs/SYSCALLS.md, the vDSO image and snap's entry object (go generate ./...; needs gcc)
	$(GO) generate ./...

check-generated: ## fail if a committed generated file is stale (serializers, the vDSO image, snap's entry object)
	$(GO) run ./tools/stategen -check ./...
	$(GO) run ./tools/syscalldoc -check -o docs/SYSCALLS.md
	$(GO) test -count=1 -run 'TestImageMatchesSources' ./kernel/vdso/
	$(GO) test -count=1 -run 'TestEntryObject' ./cmd/snapshotter/internal/fasttake/

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./...; \
	elif [ -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then "$$($(GO) env GOPATH)/bin/staticcheck" ./...; \
	else echo "staticcheck not installed (.ci/run installs it)"; [ -z "$$SNAP_REQUIRE_ALL" ]; fi

test: build check-generated lint ## run all tests (race detector on stateify)
	$(GO) test -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./stateify/...

fuzz-short: ## run each fuzz target for FUZZTIME
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

bench: build ## run Go and end-to-end benchmarks against same-run baselines (output in bench.out)
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./... | tee bench.out

demo: build ## build snap and show the main job on the default local store
	@./scripts/demo.sh

clean: ## remove build output
	rm -rf bin bench.out
