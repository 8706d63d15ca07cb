# One entry point for people and CI. `make demo` and `make test` are the two
# README commands; `.ci/run` calls `make check` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp

.PHONY: install demo test check lint format typecheck layers cycles bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q --config-settings editable_mode=strict -e '.[dev]'
	touch $(STAMP)

# The strict editable install links each source file into build/; re-link so
# that modules added since the last install are importable.
install: $(STAMP)
	$(PY) -m pip install -q --no-deps --no-build-isolation --config-settings editable_mode=strict -e .

demo: install
	$(VENV)/bin/fsql demo

test: install
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

check: install lint typecheck layers cycles

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck:
	# run outside the checkout so ./fsql (without its mapped subpackages) does not shadow the install
	cd build && ../$(VENV)/bin/mypy --config-file ../pyproject.toml -p fsql

# the layers contract in pyproject.toml: a module imports only from the layers below
layers:
	cd build && ../$(VENV)/bin/lint-imports ../pyproject.toml

# no import cycle between the sub-packages and top-level modules of fsql
# (every import, inside functions too); the tool ships in ../shared
cycles:
	@if [ -f ../shared/tools/import_cycles.py ]; then python3 ../shared/tools/import_cycles.py .; \
	else echo "cycles: ../shared/tools/import_cycles.py not found, skipped"; fi

bench: install
	$(PY) benchmarks/ingest.py

clean:
	rm -rf $(VENV) build *.egg-info
