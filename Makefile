# Two commands set up a fresh machine: `make demo` (the main job on the embedded default) and `make test`.
# Everything installs into .venv with the versions pinned in constraints.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIN := -c constraints.txt
# Build requirements go in first: the C++ extension is built against the torch in .venv (--no-build-isolation),
# never against a second torch that pip would download into an isolated build environment.
BUILD_DEPS := torch torchvision scikit-build-core pybind11 cmake ninja

.PHONY: demo test install bench clean gpu-suite gpu-carry

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.build-deps: $(BIN)/python constraints.txt
	$(PIP) install $(PIN) $(BUILD_DEPS)
	touch $@

install: $(VENV)/.build-deps
	$(PIP) install --no-build-isolation $(PIN) ".[test,openvino]"

demo: install
	$(BIN)/lway-engine demo --output outputs/demo

test: install
	$(BIN)/pytest

# The GPU suite (bench/gpu_suite.sh): on a lent GPU machine `make gpu-suite OUT=...`; here `make gpu-suite DRY=1`.
gpu-suite:
	bench/gpu_suite.sh $(if $(DRY),--dry-run) $(OUT)

# What the GPU machine lacks (wheels, weights packed losslessly, City100 031-040), in .gpu-suite/ (git-ignored).
gpu-carry: install
	$(BIN)/python bench/gpu_carry.py pack

clean:
	rm -rf build outputs .pytest_cache
