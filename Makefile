# One task runner. `make run` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := tests/js/node_modules/.installed
# The shipped sample's content is from May 2025: build the issue that went out then.
SAMPLE_AS_OF ?= 2025-05-09T17:00:00+01:00

.PHONY: run install test bench lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Production: .venv with digest and its runtime dependencies only (no test or lint tools), not editable.
install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet .
	$(BIN)/digest --version

run: $(STAMP)
	$(BIN)/digest build --config config.toml --as-of $(SAMPLE_AS_OF)

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff format --check digest tests benchmarks
	$(BIN)/ruff check digest tests benchmarks
	$(BIN)/mypy --strict digest

format: $(STAMP)
	$(BIN)/ruff format digest tests benchmarks
	$(BIN)/ruff check --fix digest tests benchmarks

clean:
	rm -rf $(VENV) out .digest tests/js/node_modules
