# evm-executor: build, run, test.
#   make run    the main job on the embedded store (no server needed)
#   make test   everything CI runs: installs redis-server if missing, fmt check, clippy, all tests

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/evm-executor
# Where the shared test data lives (chains, conformance suites, BSC data).
EVM_EXECUTOR_FIXTURES ?= $(CURDIR)/../shared/fixtures
export EVM_EXECUTOR_FIXTURES
# The demo run's store and chain.
RUN_DIR ?= data/demo
RUN_CHAIN ?= $(EVM_EXECUTOR_FIXTURES)/chains/geth-ethtest

.PHONY: build run test test-deps lint fmt clean

build:
	$(CARGO) build --release

DEMO_ENV = EVM_EXECUTOR_CHAIN_NAME=custom EVM_EXECUTOR_STORAGE_BACKEND=embedded \
	EVM_EXECUTOR_STORAGE_EMBEDDED_PATH=$(RUN_DIR)/store.redb

run: build
	@mkdir -p $(RUN_DIR)
	$(DEMO_ENV) $(BIN) init --genesis $(RUN_CHAIN)/genesis.json
	$(DEMO_ENV) $(BIN) import $(RUN_CHAIN)/chain.rlp
	$(DEMO_ENV) $(BIN) run --exit-at-head
	$(DEMO_ENV) $(BIN) status

# Tests start their own redis-server; install it where it is missing (Debian/Ubuntu).
test-deps:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@test -d "$(EVM_EXECUTOR_FIXTURES)" || { echo "fixtures not found at $(EVM_EXECUTOR_FIXTURES); set EVM_EXECUTOR_FIXTURES"; exit 1; }

test: test-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	@mkdir -p target
	set -o pipefail; $(CARGO) test --release --workspace --all-targets 2>&1 | tee target/test.log
	@awk '/^test result:/ {p+=$$4; f+=$$6; i+=$$8} END {printf "%d passed, %d failed, %d skipped\n", p, f, i}' target/test.log

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# The container image (needs a Docker engine; build context is the repository root).
.PHONY: docker-build
docker-build:
	docker build -f deployments/docker/Dockerfile -t evm-executor:latest .
