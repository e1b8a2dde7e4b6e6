# Efir on one machine. `make up` and `make test` work on a fresh Debian with Python 3.11:
# `setup` installs only what is missing: Debian's ffmpeg (the tests' independent publisher and prober)
# and chromium (the overlay tests' real browser), uv, and the locked Python environment.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# pip installs uv under ~/.local/bin when not root.
export PATH := $(HOME)/.local/bin:$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
UV_RUN := uv run --frozen
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432

.PHONY: help setup up test test-quick lint bench postgres

help:
	@echo "make up          install what is missing, then run everything (efir up)"
	@echo "make test        the full test suite: SQLite, then the database tests on PostgreSQL"
	@echo "make test-quick  the tests without the slow end-to-end ones"
	@echo "make lint        ruff check, ruff format --check, mypy (services, ingest_node)"
	@echo "make bench       the benchmarks in benchmarks/"

setup:
	@missing=$$(for p in ffmpeg chromium; do command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update && $(SUDO) apt-get install -y $$missing; fi
	@command -v uv >/dev/null || { \
		python3 -m pip --version >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-pip; }; \
		python3 -m pip install --user uv || python3 -m pip install --user --break-system-packages uv; }
	uv sync --frozen

up: setup
	$(UV_RUN) efir up

# Start the machine's PostgreSQL cluster when it is not answering (it is preinstalled here).
postgres:
	@pg_isready -q -h $(PG_HOST) -p $(PG_PORT) || { \
		echo "starting PostgreSQL"; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -n 1) main start; \
		for i in $$(seq 30); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && break; sleep 1; done; \
		pg_isready -h $(PG_HOST) -p $(PG_PORT); }

test: setup postgres
	$(UV_RUN) pytest
	EFIR_TEST_DATABASE=postgres $(UV_RUN) pytest -m db

test-quick: setup
	$(UV_RUN) pytest -m "not slow"

lint: setup
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) mypy

bench: setup
	@set -e; for bench in benchmarks/*.py; do echo "== $$bench"; $(UV_RUN) python "$$bench"; done

# Playback tests (tests/ingest_node/ingest/test_players.py, docs/players.md): headless VLC and node/npm
# from Debian when missing, and hls.js as pinned in players/package-lock.json, installed with `npm ci`
# only when the lock file is newer than the last install.
.PHONY: player-tools
setup: player-tools players/node_modules/.efir-installed
player-tools:
	@missing=$$(command -v cvlc >/dev/null || echo "vlc-bin vlc-plugin-base"; \
		command -v npm >/dev/null || echo "nodejs npm"); \
	if [ -n "$$(echo $$missing)" ]; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; fi
players/node_modules/.efir-installed: players/package-lock.json | player-tools
	cd players && npm ci --no-audit --no-fund
	@touch $@
