# evm-executor: build, run, test.
#   make run    the main job on the embedded store (no server needed)
#   make test   everything CI runs: installs redis-server and prometheus if missing, fmt check,
#               clippy, all tests
#   make bench, make bench-reth   performance: against the in-memory ceiling, against reth

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/evm-executor
# Where the shared test data lives (chains, conformance suites, BSC data).
EVM_EXECUTOR_FIXTURES ?= $(CURDIR)/../shared/fixtures
export EVM_EXECUTOR_FIXTURES
# The demo run: a generated chain (made once) and the embedded store, both under RUN_DIR.
RUN_DIR ?= data/demo
RUN_BLOCKS ?= 300
RUN_TXS ?= 100
# The bench chain (made once): at least 2,000 blocks x 200 transactions.
BENCH_BLOCKS ?= 2000
BENCH_TXS ?= 200
# BENCH_ACCOUNTS=N: the chain over N funded accounts in the BSC-like mix (gen --accounts N),
# in a directory of its own.
BENCH_ACCOUNTS ?=
BENCH_CHAIN ?= data/bench-chain$(if $(BENCH_ACCOUNTS),-$(BENCH_ACCOUNTS)-accounts-$(BENCH_BLOCKS)x$(BENCH_TXS))
# The bench's redis-server persists with AOF when BENCH_AOF=yes (appendonly yes, as a real store).
BENCH_AOF ?= no
# BENCH_RELAY=yes: after the direct run, a fresh server of the same kind through bench's relay
# (one network hop, as a remote Pika).
BENCH_RELAY ?= no

.PHONY: build run bench bench-reth test test-deps lint fmt clean

build:
	$(CARGO) build --release

DEMO_ENV = EVM_EXECUTOR_CHAIN_NAME=custom EVM_EXECUTOR_STORAGE_BACKEND=embedded \
	EVM_EXECUTOR_STORAGE_EMBEDDED_PATH=$(RUN_DIR)/store.redb

run: build
	@mkdir -p $(RUN_DIR)
	@test -f $(RUN_DIR)/chain/chain.rlp || \
		$(BIN) gen --blocks $(RUN_BLOCKS) --txs-per-block $(RUN_TXS) --out $(RUN_DIR)/chain
	$(DEMO_ENV) $(BIN) init --genesis $(RUN_DIR)/chain/genesis.json
	$(DEMO_ENV) $(BIN) import $(RUN_DIR)/chain/chain.rlp
	$(DEMO_ENV) $(BIN) run --exit-at-head
	$(DEMO_ENV) $(BIN) status

# Generate the bench chain once.
BENCH_GEN = @test -f $(BENCH_CHAIN)/chain.rlp || \
	$(BIN) gen --blocks $(BENCH_BLOCKS) --txs-per-block $(BENCH_TXS) --out $(BENCH_CHAIN) \
		$(if $(BENCH_ACCOUNTS),--accounts $(BENCH_ACCOUNTS))

# The pipeline against the in-memory ceiling on both backends: the embedded store, then a
# redis-server of its own on a free port (stopped afterwards), and with BENCH_RELAY=yes a fresh
# one reached through the relay (so both server runs start from the same empty server); see
# BENCH_* above.
bench: build
	$(BENCH_GEN)
	EVM_EXECUTOR_STORAGE_BACKEND=embedded $(BIN) bench --chain $(BENCH_CHAIN)
	@for how in direct $(if $(filter yes,$(BENCH_RELAY)),relay); do \
		dir=$$(mktemp -d); port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'); \
		redis-server --port $$port --dir $$dir --save '' --appendonly $(BENCH_AOF) --daemonize yes --pidfile $$dir/redis.pid >/dev/null; \
		sleep 0.5; \
		EVM_EXECUTOR_STORAGE_BACKEND=pika EVM_EXECUTOR_STORAGE_PIKA_ADDR=127.0.0.1:$$port \
			$(BIN) bench --chain $(BENCH_CHAIN) $$([ $$how = relay ] && echo --relay); status=$$?; \
		kill $$(cat $$dir/redis.pid); for i in $$(seq 600); do [ -e $$dir/redis.pid ] || break; sleep 0.1; done; \
		rm -rf $$dir; \
		[ $$status = 0 ] || exit $$status; \
	done

# Against reth 2.5.1 (../shared/peers) on the bench chain: whole processes from empty data
# directories, alternating BENCH_ROUNDS times after a warm-up (benches/against-reth.sh).
BENCH_ROUNDS ?= 3
bench-reth: build
	$(BENCH_GEN)
	benches/against-reth.sh $(BENCH_CHAIN) $(BENCH_ROUNDS)

# Tests start their own redis-server (redis-cli joins clusters; openssl makes TLS
# certificates) and Prometheus (the dashboard's queries are evaluated on a real one;
# promtool checks deployments/prometheus); install what is missing (Debian/Ubuntu).
test-deps:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v openssl >/dev/null || { \
		echo "installing redis-server, redis-tools, openssl"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server redis-tools openssl >/dev/null; }
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
		echo "installing prometheus"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
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
