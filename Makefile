# Two commands do all set-up on a fresh machine:
#   make quickstart   - install, then run the MOSSA quickstart on the embedded Gemma 3 270M + builtin tasks
#   make test         - install, then run the test suite
#
# Install notes: torch is installed FIRST, pinned to the CPU wheel (torch==2.13.0), unless the venv
# already imports a torch - so a fresh machine never pulls several GB of CUDA packages, and GPU users
# keep their own build:  make install VENV_FLAGS=--system-site-packages  (reuses a system torch), or
# make install TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>".

PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,embedded
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.taskscope-installed

.PHONY: install test quickstart transfer bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

quickstart: install
	$(BIN)/taskscope run

transfer: install
	$(BIN)/taskscope run configs/transfer_quickstart.yaml

bench: install
	$(BIN)/python -m pip install -e ".[bench]"
	$(BIN)/python benchmarks/bench_cka.py --quick
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_eval_loss.py

clean-venv:
	rm -rf $(VENV)
