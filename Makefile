# Set-up and everyday commands. Each target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch is installed first and pinned: an unpinned torch pulls CUDA wheels.
TORCH_PIN := torch==2.13.0

.PHONY: demo test docs venv bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[test,docs]" $(TORCH_PIN)
	touch $@

venv: $(VENV)/.installed

demo: venv  ## fit an imputer on the embedded default data set
	$(PY) -m skmissvae demo

test: venv  ## run the test suite, then build the documentation (its examples run too)
	$(PY) -m pytest -q -p no:cacheprovider
	@$(MAKE) --no-print-directory docs

# Quiet on success, so that pytest's summary stays the last line of `make test`.
docs: venv  ## build the HTML documentation into docs/_build/html; warnings are errors
	@$(PY) -m sphinx -q -W --keep-going -b html docs docs/_build/html

bench: venv  ## the maintained benchmarks (hours; not part of CI); see docs/benchmarks.md
	$(PY) -m pip install -q -e ".[benchmarks]" $(TORCH_PIN)
	$(PY) benchmarks/toy.py
	$(PY) benchmarks/paper_toy.py
	$(PY) benchmarks/imputation.py
	$(PY) benchmarks/downstream.py
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/auto_examples docs/generated docs/api.rst docs/sg_execution_times.rst
