# MantisDB build, test and benchmark targets. `make help` lists them.

CARGO       ?= cargo
CORE_DIR    := rust-core
CARGO_FLAGS ?= --locked
CRASH_CYCLES ?= 300
SERVER_CRASH_CYCLES ?= 1000
# Cycles of the same harness over the Redis protocol (SET/DEL/MSET, pipelined).
RESP_CRASH_CYCLES ?= 300
# Server flags of the crash harness: small segments, so compaction runs between kills.
SERVER_CRASH_ARGS ?= --segment-size 1MiB
# Simulated power cuts in `make crash-test`: seeded workloads, and the steps of each.
POWERCUT_SEEDS ?= 20
POWERCUT_OPS ?= 150
# Seconds per target: `make fuzz` (coverage-guided) and its short run in `make test`.
FUZZ_TIME ?= 60
FUZZ_TEST_SECS ?= 2
# New inputs per Go target in `make test`'s short run (a few seconds each
# here). A count, not a duration: Go 1.26's fuzzing coordinator can report
# "context deadline exceeded" as a failure when a -fuzztime duration ends
# while a worker is mid-input (go.dev/issue/75804, fixed in Go 1.27), and a
# count has no deadline to race. Each new input that widens coverage is
# minimized first, by default for up to 60 s (one target stalled 50 s so);
# a count bounds that too: FUZZ_TEST_MINIMIZE runs of the target.
FUZZ_TEST_EXECS ?= 20000
FUZZ_TEST_MINIMIZE ?= 1000
# Go fuzz targets as package:target pairs.
GO_FUZZ_TARGETS := ./internal/api:FuzzBatchDecode ./internal/api:FuzzTxnDecode ./internal/api:FuzzKeyRoutes \
	./internal/api:FuzzScanQuery ./internal/api:FuzzBatchHTTP ./internal/api:FuzzTxnHTTP \
	./internal/api:FuzzRequestHeaders ./internal/resp:FuzzRequest

# Fault cycles of `make cluster-test` (3 server processes, nemesis, linearizability check).
CLUSTER_CYCLES ?= 300
SOAK_DURATION ?= 10m
SOAK_OUT     ?= /tmp/mantisdb-soak
SOAK_FLAGS   ?=

.DEFAULT_GOAL := help
.PHONY: help roundtrip-1m ui ui-check test-ui dashboard-screenshots bench-resp bench-peers lint-packaging build build-rust run build-rust-core bench bench-http soak test test-rust test-c test-go test-fuzz fuzz header crash-test bench-rust lint fmt clean cluster cluster-test bench-cluster

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
DATA_DIR  ?= ./data


help: ## List the targets with one line each
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

build: ## Build ./mantisdb (pure Go, memory engine: not durable)
	$(GO) build -ldflags "$(LDFLAGS)" -o mantisdb ./cmd/mantisdb

build-rust: build-rust-core ## Build ./mantisdb-rust (Rust engine, statically linked)
	$(GO) build -tags rust -ldflags "$(LDFLAGS)" -o mantisdb-rust ./cmd/mantisdb

run: build-rust ## Build and start ./mantisdb-rust: HTTP on 127.0.0.1:8080, Redis protocol on 127.0.0.1:6379, data in ./data
	./mantisdb-rust --data-dir $(DATA_DIR)

build-rust-core: ## Build the Rust core (release): cdylib, staticlib and rlib
	cd $(CORE_DIR) && $(CARGO) build $(CARGO_FLAGS) --release

test: test-rust test-c test-go test-fuzz ui-check test-ui ## Run every test (the command CI runs)

test-rust: ## Rust core: unit, API, model, concurrency, recovery, fuzz and 20 crash cycles
	cd $(CORE_DIR) && $(CARGO) test $(CARGO_FLAGS) -- --test-threads=2

test-c: ## C program against the cdylib under valgrind (no leaks, no invalid accesses)
	@# Built without mimalloc, so valgrind sees every allocation; in the main
	@# target directory, whose dependencies test-rust has already built.
	cd $(CORE_DIR) && $(CARGO) build $(CARGO_FLAGS) --no-default-features --lib
	$(CC) -std=c11 -Wall -Wextra -Werror -I $(CORE_DIR)/include $(CORE_DIR)/tests/c/abi_test.c \
		-L $(CORE_DIR)/target/debug -lmantisdb_core -Wl,-rpath,$(abspath $(CORE_DIR)/target/debug) -o $(CORE_DIR)/target/debug/abi_test
	valgrind -q --error-exitcode=1 --leak-check=full --show-possibly-lost=no \
		--errors-for-leak-kinds=definite,indirect $(CORE_DIR)/target/debug/abi_test

test-go: build-rust-core ## Go: vet, tests with -race for both engines (memory, and rust via cgo; 10 server crash cycles)
	$(GO) vet ./...
	$(GO) vet -tags rust ./...
	$(GO) test -race -count=1 ./...
	$(GO) test -tags rust -race -count=1 ./...
	GOEXPERIMENT=cgocheck2 $(GO) test -tags rust -count=1 -run 'Rust' ./storage/

test-fuzz: ## Every fuzz target briefly: seed corpora, saved regressions, then FUZZ_TEST_SECS (Rust) or FUZZ_TEST_EXECS (Go) of new inputs each
	@# Rust: without libFuzzer, in the main target directory (test-c built
	@# the core without mimalloc there already).
	cd $(CORE_DIR)/fuzz && MANTIS_FUZZ_SECS=$(FUZZ_TEST_SECS) CARGO_TARGET_DIR=../target \
		$(CARGO) test $(CARGO_FLAGS) -- --test-threads=2
	@for pt in $(GO_FUZZ_TARGETS); do \
		p=$${pt%%:*}; t=$${pt##*:}; \
		echo "$(GO) test -fuzz $$t -fuzztime $(FUZZ_TEST_EXECS)x -fuzzminimizetime $(FUZZ_TEST_MINIMIZE)x $$p"; \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZ_TEST_EXECS)x \
			-fuzzminimizetime $(FUZZ_TEST_MINIMIZE)x $$p || exit 1; \
	done

fuzz: ## Coverage-guided fuzzing of every target for FUZZ_TIME seconds each (default 60), then a summary
	FUZZ_TIME=$(FUZZ_TIME) GO_TARGETS="$(GO_FUZZ_TARGETS)" $(CORE_DIR)/fuzz/run.sh

ui: ## Rebuild the dashboard bundle (internal/api/ui/dist) from src/ with the npm lock file, and its hash manifest
	cd internal/api/ui && npm ci --no-audit --no-fund --loglevel=error && npm run build
	MANTIS_WRITE_UI_MANIFEST=1 $(GO) test -count=1 -run '^TestBundleIsFresh$$' ./internal/api/ui

test-ui: build-rust-core ## Dashboard in headless Chromium over the Rust engine: charts under load, key browser, auth (~25 s)
	MANTISDB_BROWSER_TESTS=1 $(GO) test -tags rust -count=1 -run 'Browser|TestErrorsSeesWhatPagesLog' ./internal/api/ui ./internal/chromium

dashboard-screenshots: build-rust ## Photograph /ui under load at laptop and phone width into docs/operations/dashboard/ (~1 min)
	$(GO) run ./cmd/mantisdb-screenshots --server ./mantisdb-rust --out docs/operations/dashboard

ui-check: ## Fail when the checked-in dashboard bundle differs from a fresh build of its sources (needs npm)
	scripts/ui-check.sh

header: ## Regenerate rust-core/include/mantisdb.h with the pinned cbindgen
	cd $(CORE_DIR) && MANTIS_WRITE_HEADER=1 $(CARGO) test $(CARGO_FLAGS) --test header

crash-test: build-rust ## Crash tests: core SIGKILL (CRASH_CYCLES=300), power cuts (POWERCUT_SEEDS=20), server over HTTP (SERVER_CRASH_CYCLES=1000) and RESP (RESP_CRASH_CYCLES=300); ~40 min
	cd $(CORE_DIR) && MANTIS_CRASH_CYCLES=$(CRASH_CYCLES) MANTIS_COMPACTION_CRASH_CYCLES=$(CRASH_CYCLES) \
		MANTIS_BANK_CYCLES=$(CRASH_CYCLES) $(CARGO) test $(CARGO_FLAGS) --release \
		--test crash --test compaction_crash --test txn_bank -- --nocapture
	cd $(CORE_DIR) && MANTIS_POWERCUT_SEEDS=$(POWERCUT_SEEDS) MANTIS_POWERCUT_OPS=$(POWERCUT_OPS) \
		$(CARGO) test $(CARGO_FLAGS) --release --test powercut -- --nocapture
	$(GO) run ./cmd/mantisdb-crashtest -server ./mantisdb-rust -cycles $(SERVER_CRASH_CYCLES) -server-args "$(SERVER_CRASH_ARGS)"
	$(GO) run ./cmd/mantisdb-crashtest -server ./mantisdb-rust -protocol resp -cycles $(RESP_CRASH_CYCLES) -server-args "$(SERVER_CRASH_ARGS)"

roundtrip-1m: build-rust-core ## dump and load of 1,000,000 keys into an identical database (make test runs 100,000)
	MANTISDB_ROUNDTRIP_KEYS=1000000 $(GO) test -tags rust -count=1 -timeout 30m -run '^TestDumpLoadRoundTrip$$' -v ./cmd/mantisdb/

bench-rust: ## Criterion benchmarks of the core beside raw SkipMap, moka and quick_cache (~15 min)
	cd $(CORE_DIR) && $(CARGO) bench $(CARGO_FLAGS) --bench storage_bench --bench cache_bench --bench engine_bench
	python3 $(CORE_DIR)/benches/ratios.py

bench: build-rust-core ## Go benchmarks: both engines side by side, and the price of the Go/Rust crossing
	$(GO) test -tags rust -run x -bench 'Engines|Crossing' -benchmem ./storage/

bench-peers: build-rust-core ## MantisDB beside Badger, Pebble, bbolt, BuntDB (own module): 1M x 100 B, 100k x 4 KiB, 1M x 1 KiB; rewrites docs/performance/peers.md (~45 min)
	cd bench/peers && $(GO) run -tags rust . -keys 1000000,100000,1000000 -values 100,4096,1024 -json results.json -doc ../../docs/performance/peers.md

bench-resp: build-rust ## redis-benchmark vs redis-server side by side, alternating rounds (ROUNDS=3), server CPU beside each figure, wrk over HTTP; ~10 min
	scripts/bench-resp.sh

cluster: build-rust ## Start a 3-node cluster on loopback (HTTP 8081-8083, Redis 6381-6383, raft 7001-7003, data in ./cluster-data)
	scripts/cluster.sh ./mantisdb-rust

cluster-test: build-rust ## Cluster fault harness: CLUSTER_CYCLES=300 kills/pauses/partitions, porcupine check (~25 min)
	$(GO) run ./cmd/mantisdb-clustertest -server ./mantisdb-rust -engine rust -cycles $(CLUSTER_CYCLES)

bench-cluster: build-rust ## 3-node cluster beside one node over HTTP (64 clients, --sync always), ratios; JSON in bench-cluster.json
	$(GO) run ./cmd/mantisdb-clusterbench -server ./mantisdb-rust -engine rust -json bench-cluster.json

bench-http: ## Load test of the server over loopback with wrk (installs wrk if missing)
	scripts/bench-http.sh

soak: build-rust ## Soak: mixed HTTP load plus slow/oversized clients for SOAK_DURATION (10m); ops/s, p99, RSS over time, verdict; JSON/CSV in SOAK_OUT
	mkdir -p $(SOAK_OUT)
	$(GO) run ./cmd/mantisdb-soak --server ./mantisdb-rust --duration $(SOAK_DURATION) \
		--json $(SOAK_OUT)/soak.json --csv $(SOAK_OUT)/soak.csv $(SOAK_FLAGS)

lint: ## cargo fmt --check, clippy -D warnings, gofmt, go vet, hadolint, actionlint, shellcheck
	cd $(CORE_DIR) && $(CARGO) fmt --check && $(CARGO) clippy $(CARGO_FLAGS) --all-targets -- -D warnings
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./... && $(GO) vet -tags rust ./...
	scripts/lint-packaging.sh

lint-packaging: ## hadolint (Dockerfile.rust), actionlint (workflows), shellcheck (scripts); pinned, installed into .tools/
	scripts/lint-packaging.sh

fmt: ## Format the Rust code
	cd $(CORE_DIR) && $(CARGO) fmt

clean: ## Remove build output
	cd $(CORE_DIR) && $(CARGO) clean
