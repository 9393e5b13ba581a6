# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MLOPS_HOME ?= $(CURDIR)/.mlops
export DAGSTER_HOME ?= $(MLOPS_HOME)/dagster
export BENTOML_HOME ?= $(MLOPS_HOME)/bentoml
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
# One "planned" event per asset of a range run (the daemon and the UI create runs too).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true
# `make dev`: the Dagster UI's port (`mlops serve` defaults to 3001, so both run side by side) and
# the log level of the webserver and daemon (info shows every sensor tick; the ticks' results are
# in the UI under Automation).
DEV_PORT ?= 3000
DEV_LOG_LEVEL ?= warning

.PHONY: install demo dev dagster-home test test-unit bench lint screenshots clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

# Re-installs when pyproject.toml changes; uv resolves the whole stack in seconds.
# --compile-bytecode: libraries ship as .py only, and where PYTHONDONTWRITEBYTECODE is set (as on
# the CI machines) every process would compile them again: importing mlflow, scikit-learn,
# catboost and boto3 took 14 s here, 6 s once compiled. Compiling costs about 45 s, once.
$(VENV)/.installed: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install  ## The 30-day BigMart story on embedded defaults (starts from an empty .mlops)
	$(BIN)/mlops demo --reset

dagster-home:
	@mkdir -p "$(DAGSTER_HOME)"
	@# A link into the repository's instance/dagster.yaml; one left dangling by the old layout
	@# (dagster.yaml at the root) is replaced.
	@[ -e "$(DAGSTER_HOME)/dagster.yaml" ] || ln -sfn "$(CURDIR)/instance/dagster.yaml" "$(DAGSTER_HOME)/dagster.yaml"

dev: install dagster-home  ## The Dagster UI (http://127.0.0.1:3000) on the same state as the demo
	@echo "Dagster UI on http://127.0.0.1:$(DEV_PORT) (logs at $(DEV_LOG_LEVEL); make dev DEV_LOG_LEVEL=info for all)"
	$(BIN)/dg dev -h 127.0.0.1 -p $(DEV_PORT) --log-level $(DEV_LOG_LEVEL)

test: install  ## The whole suite, integration tests (real servers) included
	$(BIN)/pytest -n 2 --dist loadgroup

test-unit: install
	$(BIN)/pytest -n 2 --dist loadgroup -m "not integration"

bench: install  ## Benchmarks; results in bench/results/
	$(BIN)/python bench/run.py

lint: install  ## ruff, and the layers' import contracts (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# On demand, not part of `make test`: needs Debian's chromium (`apt-get install -y chromium`).
# SCREENSHOTS_ARGS: `--home DIR` photographs an existing home instead of a fresh short demo;
# page names (lineage monitoring plots automation runs) take only those.
screenshots: install  ## Screenshots of the main UI pages into docs/screenshots/, for the README
	$(BIN)/python docs/screenshots.py $(SCREENSHOTS_ARGS)

clean:
	rm -rf "$(MLOPS_HOME)"
