# Two commands for a fresh machine with python3 and make: `make run` and `make test`.
# `make check` is the fast inner loop: ruff and the tests that run no notebook (the `notebooks` marker).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Real Airflow for tests/test_airflow_real.py, in its own virtualenv from a fully pinned lock (docs/airflow.md).
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
ENV    ?= local
# The browser tests drive Debian's Chromium; nothing ever downloads a browser.
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test check lab lint clean chromium bench airflow

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

airflow: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): requirements-airflow.lock
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-airflow.lock
	touch $(AIRFLOW_STAMP)

run: $(STAMP)
	$(BIN)/runbook sequence $(ENV) plan apply verify

test: $(STAMP) chromium airflow
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not notebooks"

# Installs Debian's chromium with apt when it is missing; fails loudly when it cannot.
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "$(CHROMIUM) is missing: installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) is still missing; the browser tests need" \
	  "Debian's chromium (apt-get install chromium)" >&2; exit 1; }

lab: $(STAMP)
	$(BIN)/runbook lab $(ENV)

# Runbook vs a minimal boto3 reference on fresh sandboxes (benchmarks/README.md); BENCH=--quick for a smoke run.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) runs
