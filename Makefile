# MantisDB build, test and benchmark targets. `make help` lists them.

CARGO       ?= cargo
CORE_DIR    := rust-core
CARGO_FLAGS ?= --locked
CRASH_CYCLES ?= 300

.DEFAULT_GOAL := help
.PHONY: help build-rust-core test test-rust crash-test bench-rust lint fmt clean

help: ## List the targets with one line each
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

build-rust-core: ## Build the Rust core (release): cdylib, staticlib and rlib
	cd $(CORE_DIR) && $(CARGO) build $(CARGO_FLAGS) --release

test: test-rust ## Run every test (the command CI runs)

test-rust: ## Rust core: unit, API, model, concurrency, recovery, fuzz and 20 crash cycles
	cd $(CORE_DIR) && $(CARGO) test $(CARGO_FLAGS) -- --test-threads=2

crash-test: ## Crash test with many SIGKILL cycles (CRASH_CYCLES=300)
	cd $(CORE_DIR) && MANTIS_CRASH_CYCLES=$(CRASH_CYCLES) $(CARGO) test $(CARGO_FLAGS) --release --test crash -- --nocapture

bench-rust: ## Criterion benchmarks of the core beside raw SkipMap, moka and quick_cache
	cd $(CORE_DIR) && $(CARGO) bench $(CARGO_FLAGS) --bench storage_bench --bench cache_bench
	python3 $(CORE_DIR)/benches/ratios.py

lint: ## cargo fmt --check and clippy -D warnings on every target
	cd $(CORE_DIR) && $(CARGO) fmt --check && $(CARGO) clippy $(CARGO_FLAGS) --all-targets -- -D warnings

fmt: ## Format the Rust code
	cd $(CORE_DIR) && $(CARGO) fmt

clean: ## Remove build output
	cd $(CORE_DIR) && $(CARGO) clean
