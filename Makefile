# vqueue: the two commands the README promises (`make run`, `make test`) and the usual others.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=
# Two pytest processes, each with its own Redis and PostgreSQL: one process leaves half of a
# 2-core box idle while its tests wait on the servers they started (12 min -> 7.5). 0: one process.
TEST_WORKERS ?= 2

.PHONY: run test lint format types unit screenshots soak bench bench-deps browser-deps balancer-deps clean

$(STAMP): pyproject.toml server/_straight.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

## run: the server on http://127.0.0.1:8000 (embedded Redis and PostgreSQL unless REDIS_URL / DATABASE_URL are set)
run: $(STAMP)
	VQ_DEMO=$${VQ_DEMO:-1} $(BIN)/vqueue serve --host 127.0.0.1 --port 8000

## test: lint, types and the whole test suite (starts its own Redis and PostgreSQL)
test: lint types unit

lint: $(STAMP)
	$(BIN)/ruff check server protocol loadtest tests
	$(BIN)/ruff format --check server protocol loadtest tests

format: $(STAMP)
	$(BIN)/ruff format server protocol loadtest tests
	$(BIN)/ruff check --fix server protocol loadtest tests

types: $(STAMP)
	$(BIN)/mypy server protocol loadtest

# The fan-out's write loop is in C where it was built (server/_straight.c): the tests whose frames go
# through it run a second time with the loop in Python (test_outbox_direct runs both by itself).
PURE_TESTS := $(addprefix tests/server/test_,ws.py multinode.py multinode_line.py resync.py \
	slow_reader.py fanout_open.py watch_race.py ws_teardown.py views_ws.py views_multinode.py \
	outbox.py stop.py metrics.py)

unit: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)
	VQ_PURE_PYTHON=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS) $(PURE_TESTS)

## screenshots: the browser tests, writing the README's pictures into docs/screenshots
screenshots: $(STAMP) browser-deps
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

## soak: the long runs (PostgreSQL down for a minute, Redis and PostgreSQL SIGKILLed for ~60 s, ...), only when asked
soak: $(STAMP)
	$(BIN)/python -m pytest -m soak $(PYTEST_ARGS)

## bench: the fixed harness, persistence, scale, metrics on/off, priority-join and notifier runs that write BENCHMARKS.md (about 45 minutes)
bench: $(STAMP) bench-deps
	$(BIN)/python -m server.bench_persist --out bench-results/persist.json
	$(BIN)/python -m loadtest.bench --out BENCHMARKS.md --persist bench-results/persist.json

## browser-deps: Debian's Chromium for the browser tests (Playwright cannot download one here)
browser-deps:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

## bench-deps: wrk (the joins-per-second run) and HAProxy (the balancer step), from Debian
bench-deps: balancer-deps
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)

## balancer-deps: Debian's HAProxy 2.6 for the load-balancer tests and bench (skipped without it)
balancer-deps:
	@command -v haproxy >/dev/null || (apt-get update -qq && apt-get install -y -qq haproxy >/dev/null)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
