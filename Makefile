# budgetwatch: the front door. `make demo` runs the main job, `make test` the whole suite.
# Both set up what they need first (a virtual environment and the real tools).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_BIN := $(CURDIR)/.tools/bin
LIMITS ?= limits.yaml
DEMO_SECONDS ?= 0
BENCH_AGENTS ?= 1000,10000
BENCH_INTERVALS ?= 60,10
export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: help venv tools system-packages generate lint test test-fast demo bench bench-rules bench-thanos clean

help:
	@echo "make demo      run the whole pipeline with simulated agents (DEMO_SECONDS=N to stop after N s)"
	@echo "make test      build the tools, lint, type-check and run every test"
	@echo "make tools     build otelcol, prometheus, promtool, alertmanager, amtool, thanos into .tools/bin"
	@echo "make generate  re-render alerts/rules/, dashboards/ and otel-collector/pricing.yaml"
	@echo "make bench     instrumentation benchmark; make bench-rules: rule evaluation benchmark"
	@echo "make bench-thanos  sizing of the Thanos deployment (thanos/) at 1,000 and 10,000 agents"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) (>= 3.11) is required" >&2; exit 1; }
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: Python >= 3.11 is required" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

tools:
	@bash scripts/build-tools.sh all

system-packages:
	@bash scripts/ensure-system-packages.sh

# The CLI is the only writer of generated files; tests/test_generated_fresh.py runs the same
# command with --check.
GENERATE_ARGS := --output . --rules-dir alerts/rules --dashboards-dir dashboards --prices otel-collector/prices.yaml --collector-dir otel-collector

generate: venv
	$(VENV)/bin/budgetwatch render $(LIMITS) $(GENERATE_ARGS)

lint: venv
	$(VENV)/bin/ruff check instrumentation tests scripts examples
	$(VENV)/bin/ruff format --check instrumentation tests scripts examples
	$(VENV)/bin/mypy

test: venv tools system-packages lint
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not e2e"

demo: venv tools
	$(PY) scripts/demo.py --limits $(LIMITS) --seconds $(DEMO_SECONDS)

bench: venv
	$(PY) scripts/bench_instrumentation.py

bench-rules: venv tools
	$(PY) scripts/bench_rules.py --agents $(BENCH_AGENTS) --interval $(BENCH_INTERVALS)

bench-thanos: venv tools
	$(PY) scripts/bench_thanos.py --agents $(BENCH_AGENTS)

clean:
	rm -rf .tools/build out
