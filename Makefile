# Two commands on a fresh machine:
#   make run    install into .venv and start the demo (dashboard on http://localhost:8000/)
#   make test   install system packages and .venv, then lint, type-check and test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test install install-dev bytecode system-deps lint bench fixtures clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.runtime bytecode

install-dev: $(VENV)/.dev bytecode

# An editable install leaves our modules uncompiled; where PYTHONDONTWRITEBYTECODE is set
# (containers, some CI), every command then compiled about 75 of them again: 0.15-0.2 s of
# start-up. compileall only rewrites what changed.
bytecode:
	$(BIN)/python -m compileall -q -j 0 aggregate api config detectors sinks stream

run: install
	@echo "heritage-audio demo: open http://localhost:$(PORT)/ (Ctrl-C to stop)"
	$(BIN)/heritage-audio run --demo --host $(HOST) --port $(PORT)

system-deps:
	bash tools/install-system-deps.sh
	bash tools/install-tools.sh

lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: system-deps install-dev lint
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python bench/stream_cost.py

fixtures: install-dev
	$(BIN)/python tools/make_fixtures.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache test-artifacts
