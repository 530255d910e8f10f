# cryptomon — every target sets up .venv when missing, so a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run demo test lint typecheck unit sysdeps bench bench-probe bench-detect bench-nab bench-notify bench-ui bench-hostile bench-clients bench-ws bench-analysis bench-frames bench-snapshot clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cryptomon needs Python >= 3.11"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# System packages the tests and benchmarks drive for real (tmux for the terminal test,
# Prometheus, its promtool (`check metrics`/`check rules`; Debian ships it in the prometheus package)
# and Alertmanager for the integration tests). Installed only when missing.
SYSPKGS := tmux:tmux prometheus:prometheus promtool:prometheus alertmanager:prometheus-alertmanager
sysdeps:
	@missing=""; for pair in $(SYSPKGS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x /usr/bin/prometheus-$$cmd || case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: missing system packages:$$missing (tests that need them are skipped)"; fi; \
	fi

run: $(STAMP)
	$(BIN)/cryptomon $(ARGS)

demo: $(STAMP)
	$(BIN)/cryptomon demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cryptomon_tui tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The fast loop (under a minute): unit tests without the slow-marked ones, on UNIT_WORKERS xdist workers (they
# are CPU-bound: ~65 s of CPU; 2 workers on 2 cores: ~49 s wall, serially 75 s). `make test` runs everything.
UNIT_WORKERS ?= 2
unit: $(STAMP)
	$(BIN)/pytest tests/unit -m "not slow" $(if $(filter 0,$(UNIT_WORKERS)),,-n $(UNIT_WORKERS)) $(ARGS)

# The whole suite spends most of its wall time waiting on real processes (daemons, receivers, tmux, Prometheus
# scrapes), so it runs on TEST_WORKERS pytest-xdist workers even on 2 cores. loadgroup hands out one test at a
# time (a slow test never queues behind another) and keeps an `xdist_group` (a module-scoped fixture) on one
# worker. TEST_WORKERS=0 runs it in this process, serially.
TEST_WORKERS ?= 4
test: $(STAMP) sysdeps lint typecheck
	$(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup) $(ARGS)

bench-probe: $(STAMP)
	@command -v prometheus-blackbox-exporter >/dev/null || (apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-blackbox-exporter >/dev/null) || echo "blackbox_exporter unavailable: cost comparison skipped"
	$(BIN)/python -m bench.bench_probe $(ARGS)

bench-detect: $(STAMP)
	$(BIN)/python -m bench.bench_detect $(ARGS)

# NAB dev set (../shared/bench/nab-dev): default detection on 28 labelled series; ARGS=--record appends to
# bench/RESULTS.md, NAB_DEV=DIR points elsewhere.
NAB_DEV ?=
bench-nab: $(STAMP)
	$(BIN)/python -m bench.bench_nab $(if $(NAB_DEV),--nab-dev $(NAB_DEV),) $(ARGS)

bench-notify: $(STAMP)
	$(BIN)/python -m bench.bench_notify $(ARGS)

bench-ui: $(STAMP) sysdeps
	$(BIN)/python -m bench.bench_ui $(ARGS)

# 15 minutes of hostile exchange answers against the real daemon (issue 13), with the UI attached headless and a
# twin daemon without hostile values as the schedule baseline; ARGS="--duration 120" for less
bench-hostile: $(STAMP)
	$(BIN)/python -m bench.bench_hostile $(ARGS)

# control API clients that stop reading vs probe schedule lag and loop lag (the tests assert no timing)
bench-clients: $(STAMP)
	$(BIN)/python -m bench.bench_clients $(ARGS)

# WebSocket streams (issue 16): CPU per message beside a raw client at 1k/10k msgs/s over 20 streams, lag
# accuracy, stall detection delay, aiohttp vs websockets (installed for the bench only when missing).
# ARGS="--quick" for a short run, ARGS="--record" appends the figures to bench/RESULTS.md.
bench-ws: $(STAMP)
	@$(BIN)/python -c 'import websockets' 2>/dev/null || $(BIN)/python -m pip install -q websockets || echo "websockets unavailable: aiohttp only"
	$(BIN)/python -m bench.bench_ws $(ARGS)

# five LLM analyses streaming beside a 10 ms ticker: how late it wakes (the test asserts no timing)
bench-analysis: $(STAMP)
	$(BIN)/python -m bench.bench_analysis $(ARGS)

# what one snapshot frame costs a face: decode, Snapshot.from_wire, the dashboard's presenter (5-100 exchanges)
bench-frames: $(STAMP)
	$(BIN)/python -m bench.bench_frames $(ARGS)

# what one snapshot costs the daemon: the engine's typed build, to_wire and the frame (5-100 exchanges)
bench-snapshot: $(STAMP)
	$(BIN)/python -m bench.bench_snapshot $(ARGS)

bench: bench-probe bench-detect bench-notify bench-ui

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache snapshot_report.html
