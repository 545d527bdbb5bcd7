# Two commands on a fresh machine with Python 3.11 and make: `make demo`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench replay clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The combined pilot portfolio on its demo day (examples/README.md); each run is a new version under runs/.
DEMO_PORTFOLIO := examples/all_pilots.yaml
DEMO_DATE := 2024-06-25

demo: $(STAMP)
	$(BIN)/flexopt validate $(DEMO_PORTFOLIO)
	$(BIN)/flexopt schedule day-ahead $(DEMO_PORTFOLIO) --date $(DEMO_DATE) --store runs

# The whole Guadalix demo day on a compressed clock (docs/operations.md, "Replaying a day"); measured in
# docs/benchmarks.md. Summary and report under replay-runs/<portfolio>/2024-06-25/replay/.
REPLAY_PORTFOLIO := examples/guadalix.yaml
REPLAY_SPEED := 600

replay: $(STAMP)
	rm -rf replay-runs
	$(BIN)/flexopt replay $(REPLAY_PORTFOLIO) --date $(DEMO_DATE) --speed $(REPLAY_SPEED) \
		--perturb examples/perturbations/guadalix.yaml --intraday-every 1h --store replay-runs

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
