# The README's commands. CI and people use the same targets.
#   make serve   create .venv if needed, install, serve the default app on the bundled model
#   make test    install the dev dependencies, lint, type-check and run the tests
#   make bench   serving benchmark: raw llama.cpp against the served /chat/stream
#   make bench-guards  guard quality (train and held-out splits) and speed against the model

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

# llama-cpp-python compiles llama.cpp from source (about 8 minutes on 2 cores, then pip caches
# the wheel). A native build (-march=native) emits AMX instructions that some kernels reject:
# the process dies with SIGILL in ggml_backend_amx_mul_mat. These flags build a portable AVX2
# binary instead. For an NVIDIA GPU: make serve CMAKE_ARGS="-DGGML_CUDA=on" (see README).
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_ARGS
# Parallel compile jobs for the llama.cpp build.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

PYTEST_ARGS ?=

.PHONY: serve test lint fmt bench bench-params bench-guards install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[local,openai,rag]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -e '.[local,openai,rag,eval,dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

serve: install
	$(BIN)/langdeploy serve

lint: install-dev
	$(BIN)/ruff check langdeploy tests benchmarks
	$(BIN)/ruff format --check langdeploy tests benchmarks
	$(BIN)/mypy

fmt: install-dev
	$(BIN)/ruff check --fix langdeploy tests benchmarks
	$(BIN)/ruff format langdeploy tests benchmarks

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev
	$(PY) benchmarks/serving.py

bench-params: install-dev
	$(PY) benchmarks/params.py

bench-guards: install-dev
	$(PY) benchmarks/guards.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
