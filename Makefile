# Mailroom: `make run` sets up and opens the console; `make test` sets up and runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve test bench setup system-deps screenshot lint clean

run: setup
	$(BIN)/mailroom

serve: setup
	$(BIN)/mailroom serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup $(VENV)/.bench-installed
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

$(VENV)/.bench-installed: pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

screenshot: setup
	$(BIN)/python scripts/screenshot.py docs/screenshot.png

lint: setup
	$(BIN)/ruff check . && $(BIN)/mypy

setup: system-deps $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[gui,test,dev]'
	touch $(STAMP)

# The shared libraries Qt needs on a bare Debian machine (offscreen and real windows).
system-deps:
	@sh scripts/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
