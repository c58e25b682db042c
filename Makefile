# The two commands of the README: `make run` (the commons on the embedded default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint install

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/gpuc up

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

test: install
	bash scripts/test.sh
