# medagent — `make help` lists the targets.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrap-stamp

.PHONY: help setup lock demo test test-fast check lint fmt fmt-check types bench nlu-model clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock .ci/bootstrap
	@.ci/bootstrap

setup: $(STAMP)  ## create .venv and install system packages when missing (idempotent)

# pip-tools lives in a venv of its own so the project's venv holds exactly the lock.
lock:  ## pin what pyproject.toml adds into requirements.lock (UPGRADE=1: newest of all); commit it
	@[ -x .venv-lock/bin/pip-compile ] || { python3 -m venv .venv-lock && .venv-lock/bin/pip install -q pip-tools; }
	@.venv-lock/bin/pip-compile -q $(if $(UPGRADE),--upgrade,) --generate-hashes --allow-unsafe --strip-extras \
	  --extra dev --extra piper --no-emit-index-url --no-emit-find-links \
	  -o requirements.lock pyproject.toml

nlu-model: $(STAMP)  ## train the intent model when its data changed (reproducible, cached)
	@$(PY) -m agent nlu train --if-changed

demo: setup nlu-model  ## run one whole simulated call on embedded defaults and print the transcript
	@$(PY) -m agent simulate agent/pbxsim/scripts/demo.yaml

# Whole calls run in real time and mostly wait on audio, so test files run in 3 workers (one file
# per worker: a file's session fixtures, such as a real Asterisk, stay in one process).
test: setup nlu-model  ## run the whole test suite (the real-Asterisk tier runs when Asterisk is installed)
	@$(PY) -m pytest -q -n 3 --dist loadfile

test-fast: setup  ## unit and adapter tests only
	@$(PY) -m pytest -q -m "not slow and not e2e and not asterisk"

lint: setup  ## ruff
	@$(VENV)/bin/ruff check agent tests bench

fmt: setup  ## format the code
	@$(VENV)/bin/ruff format agent tests bench
	@$(VENV)/bin/ruff check --fix agent tests bench

fmt-check: setup
	@$(VENV)/bin/ruff format --check agent tests bench

types: setup  ## mypy --strict on agent/
	@$(VENV)/bin/mypy

check: fmt-check lint types test  ## format check, lint, types and tests

bench: setup nlu-model  ## benchmarks, printing JSON
	@$(PY) -m bench

clean:  ## remove local state (venv kept)
	rm -rf .medagent .pytest_cache .mypy_cache .ruff_cache
