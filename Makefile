# Two commands to start: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "tap-pipedrive needs Python 3.10 or newer (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' 'meltano>=4.4,<5'
	@touch $(STAMP)

install: $(STAMP)

## demo: start the bundled Pipedrive sandbox and run tap-pipedrive into demo-output/ (own state ID)
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: the whole suite (unit, SDK standard tests, end-to-end CLI and Meltano runs)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

## bench: ~100,000 sandbox records through the tap and a minimal loop; speed, memory, API cost
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .meltano output demo-output .pytest_cache .ruff_cache *.egg-info
