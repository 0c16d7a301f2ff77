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

.PHONY: serve test lint fmt bench bench-params bench-guards install install-dev chromium clean

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
install-dev: $(VENV)/.installed-dev chromium

# The browser tests drive the system's Chromium through Playwright, which never downloads a
# browser here. Installed with apt when missing (Debian, Ubuntu); LANGDEPLOY_CHROMIUM names
# another binary. Without one the browser tests are skipped, except under CI=true: they fail.
chromium:
	@if [ -n "$$LANGDEPLOY_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 \
	    || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif [ "$$CI" = true ]; then \
	    echo "Chromium is missing and cannot be installed here: the browser tests need it." >&2; exit 1; \
	else \
	    echo "Note: no Chromium and no way to install it; the browser tests will be skipped."; \
	fi

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
