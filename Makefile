# Sendwell: `make run` serves the product, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` installs the product alone; tests, linters and their tools come with the dev stamp.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock

.PHONY: run test lint format install clean

$(RUN_STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PIP) -e .
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(PIP) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	@$(BIN)/sendwell db upgrade
	@SENDWELL_SANDBOX=$${SENDWELL_SANDBOX:-1} $(BIN)/sendwell serve

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

.PHONY: bench
bench: $(STAMP)
	@$(BIN)/python -c "import procrastinate" 2>/dev/null || $(PIP) -e '.[dev,bench]'
	$(BIN)/python -m bench.run $(if $(filter-out 0,$(FULL)),--full)

# Workers and servers SIGKILLed, a private PostgreSQL restarted, send faults, pause/resume
# hammered: counts what was lost or sent twice and writes docs/reliability.md.
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/python -m chaos.run

# The screenshots of docs/tour.md, taken from a fresh server in headless Chromium (about a minute).
.PHONY: tour
tour: $(STAMP)
	$(BIN)/python -m tour.shoot

# Known vulnerabilities in the pinned dependencies (pip-audit, PyPI's vulnerability data):
# fails on one with a fixed release, or when the service cannot be reached. See docs/security.md.
.PHONY: audit
audit: $(STAMP)
	$(BIN)/python .ci/audit.py

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench chaos tour
	$(BIN)/ruff check src tests bench chaos tour
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench chaos tour
	$(BIN)/ruff check --fix src tests bench chaos tour

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
