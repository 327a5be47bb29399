# The two commands of the README:
#   make demo   set up, generate the default synthetic data and score results on it end to end
#   make test   set up and run the test suite (what CI runs; make test-fast: without the slow tests)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := data

.PHONY: setup demo test test-fast lint benchmark check-settings bundle clean

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/python -m cityscapes_competition demo --data $(DATA)

test: setup
	$(BIN)/python -m pytest

# the tests that neither load TensorFlow nor run the official scripts (conftest.SLOW_MODULES): a few minutes less
test-fast: setup
	$(BIN)/python -m pytest -m 'not slow'

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

benchmark: setup
	$(BIN)/python benchmarks/bench_scoring.py

# challenge.yaml checked as the build checks it, and what the bundles will say (phases in local time and UTC,
# limits, time limits, image, leaderboard, warnings); writes nothing
check-settings: setup
	$(BIN)/python -m cityscapes_competition bundle --check

# dist/codalab_bundle.zip and dist/codabench_bundle.zip, from the synthetic default data (data/competition);
# for the real data: $(BIN)/python -m cityscapes_competition bundle --data DIR (a competition_data build)
bundle: setup
	$(BIN)/python -m cityscapes_competition bundle --out dist

clean:
	rm -rf $(VENV) $(DATA) dist
