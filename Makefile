# lazyexec: the commands everyone uses (README, CI).
#   make setup [PYTHON=python3] [VENV=.venv]   build and install into a venv
#   make test                                  C++ tests (ctest) + Python tests (pytest)
#   make demo                                  the main job on the bundled example
#   make bench [BENCH_ARGS=...]                real programs, every mode (docs/benchmarks.md)
#   make bench-quick                           the same, 4 workloads, 3 rounds
#   make bench-pypi                            the workloads from PyPI (pinned) on pyenv 3.12 and 3.13
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VENV_NAME := $(notdir $(abspath $(VENV)))
CPP_BUILD := build/cpp-$(VENV_NAME)
PYTEST_ARGS ?=
# Test processes (pytest-xdist): most tests start interpreters and wait on
# them, so one per CPU halves `make test` on two cores. 0: in this process.
PYTEST_JOBS ?= auto

.PHONY: fuzz-image fuzz-image-ci thirdparty real-programs real-programs-pypi setup system-deps test test-cpp test-python demo census bench bench-quick bench-pypi bench-analyze bench-import regrtest regrtest-ci clean

system-deps:
	@bash tools/system-deps.sh

$(BIN)/python:
	$(PYTHON) -m venv --system-site-packages $(VENV)

setup: system-deps $(BIN)/python
	@# Build tools live in the venv itself (a system-site copy has no scripts in $(BIN)).
	@test -x $(BIN)/cmake -a -x $(BIN)/ninja || \
	  $(BIN)/python -m pip install -q --ignore-installed cmake ninja
	@$(BIN)/python -c "import scikit_build_core" 2>/dev/null || \
	  $(BIN)/python -m pip install -q "scikit-build-core>=0.9"
	@# One build directory per venv: two interpreters with one wheel tag
	@# (pyenv's 3.11 and Debian's) must not share a CMake cache.
	$(BIN)/python -m pip install -q --no-build-isolation --config-settings=build-dir=build/wheel-$(VENV_NAME) ".[test]"
	@$(BIN)/python -c "import lazyexec._lazyexec" && test -x $(BIN)/lazyexec
	@# A build backend for the example distribution the tests build offline
	@# (tests/python/test_package_opt_in.py), outside sys.path: its .pth must
	@# not run at every start in the venv.
	@test -d $(VENV)/backend/setuptools || \
	  $(BIN)/python -m pip install -q --target $(VENV)/backend "setuptools>=70.1"

test-cpp: setup
	$(BIN)/cmake -S . -B $(CPP_BUILD) -G Ninja -DLAZYEXEC_TESTS=ON \
	  -DPython_EXECUTABLE=$(abspath $(BIN)/python) -DCMAKE_MAKE_PROGRAM=$(abspath $(BIN)/ninja) >/dev/null
	$(BIN)/cmake --build $(CPP_BUILD)
	$(BIN)/ctest --test-dir $(CPP_BUILD) --output-on-failure

test-python: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_JOBS) $(PYTEST_ARGS)

test: test-cpp test-python

demo: setup
	$(BIN)/lazyexec explain examples/app/inventory_app/rules.py
	$(BIN)/lazyexec explain --summary examples/app
	COLUMNS=120 $(BIN)/python bench/demo.py

census: setup
	$(BIN)/lazyexec explain --summary --stdlib

bench-analyze: setup
	$(BIN)/python bench/analyze_speed.py

regrtest: setup
	@# VSOCK socket tests wait in accept() forever, eagerly too, on a VM without a vsock peer.
	$(BIN)/python tools/regrtest/run.py --all --timeout 300 --ignore '*VSOCK*' --json build/regrtest-$(VENV_NAME).json

regrtest-ci: setup
	$(BIN)/python tools/regrtest/run.py --ci

# Real programs (Debian packages, run by Debian's /usr/bin/python3), eager vs
# lazyexec vs peers, alternating: bench/realworld/run.py, docs/benchmarks.md.
# Results: bench/results/realworld/ (bench-quick: build/bench/debian/results-quick/).
BENCH_VENV := .venv-debian
BENCH_ARGS ?=
bench:
	$(MAKE) setup PYTHON=/usr/bin/python3 VENV=$(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -c "import matplotlib" 2>/dev/null || $(BENCH_VENV)/bin/python -m pip install -q matplotlib
	$(BENCH_VENV)/bin/python bench/realworld/run.py $(BENCH_ARGS)

bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick

# Instructions (callgrind) of every workload, eager and lazy, fresh artifacts
# and profile per workload: the README's second table (after make bench).
BENCH_INSTRUCTION_MODES ?= lazyexec .pth,lazyexec run,lazyexec image .pth
bench-instructions:
	$(MAKE) setup PYTHON=/usr/bin/python3 VENV=$(BENCH_VENV)
	$(BENCH_VENV)/bin/python bench/realworld/instructions.py --setup --fresh --workloads all \
	  --modes "$(BENCH_INSTRUCTION_MODES)" --json bench/results/realworld/instructions.json
	$(BENCH_VENV)/bin/python bench/realworld/report.py bench/results/realworld --readme README.md

# The same workloads from PyPI at pinned versions, one venv per interpreter
# (results: bench/results/realworld-pypi-X.Y/).
PYENV_ROOT ?= $(HOME)/.pyenv
BENCH_PYENV ?= 3.12.1 3.13.0
bench-pypi:
	@set -e; for v in $(BENCH_PYENV); do \
	  $(MAKE) setup PYTHON=$(PYENV_ROOT)/versions/$$v/bin/python3 VENV=.venv-bench-$$v; \
	  .venv-bench-$$v/bin/python -c "import matplotlib" 2>/dev/null || .venv-bench-$$v/bin/python -m pip install -q matplotlib; \
	  .venv-bench-$$v/bin/python bench/realworld/run.py --target pypi $(BENCH_ARGS); \
	done

bench-import: setup
	$(BIN)/python bench/large_module.py

clean:
	rm -rf build .venv .venv-* .pytest_cache .hypothesis

real-programs:
	@# Debian-packaged programs doing real work, eagerly and lazily (tests/realprograms).
	bash tools/real-programs-deps.sh
	LAZYEXEC_REALPROGRAMS_PTH=all $(MAKE) test-python PYTHON=/usr/bin/python3 VENV=.venv-debian PYTEST_ARGS="tests/realprograms"

# The same programs' PyPI releases at pinned versions on any interpreter
# (PYTHON=..., VENV=...); REALPROGRAMS=ci: the subset CI runs on every pyenv
# interpreter (tests/realprograms/pypi_programs.py).
REALPROGRAMS ?= all
real-programs-pypi: setup
	$(BIN)/python tests/realprograms/pypi_programs.py build/realprograms-pypi-$(VENV_NAME) $(REALPROGRAMS)
	LAZYEXEC_REALPROGRAMS_PYPI=$(abspath build/realprograms-pypi-$(VENV_NAME)) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/realprograms $(PYTEST_ARGS)

thirdparty: setup
	@# Third-party projects' own test suites (pinned sdists), eagerly and lazily, case by case.
	$(BIN)/python tools/thirdparty/run.py --json build/thirdparty-$(VENV_NAME).json

# The image reader under libFuzzer (tests/fuzz/fuzz_image.cpp; needs clang and
# Debian's libclang-rt-14-dev). fuzz-image-ci: seconds, in CI.
FUZZ_SECONDS ?= 600
FUZZ_CXX ?= $(shell command -v clang++-14 || command -v clang++)
FUZZ_DIR := build/fuzz
fuzz-image:
	@test -n "$(FUZZ_CXX)" || (echo "fuzz-image: clang++ is missing (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1)
	mkdir -p $(FUZZ_DIR)/seeds $(FUZZ_DIR)/corpus
	$(FUZZ_CXX) -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc/native \
	  src/native/image/reader.cpp src/native/image/blob_hash.cpp tests/fuzz/fuzz_image.cpp -o $(FUZZ_DIR)/fuzz_image
	$(FUZZ_CXX) -std=c++20 -O1 -Isrc/native tests/fuzz/make_seeds.cpp src/native/image/reader.cpp src/native/image/blob_hash.cpp -o $(FUZZ_DIR)/make_seeds
	$(FUZZ_DIR)/make_seeds $(FUZZ_DIR)/seeds
	$(FUZZ_DIR)/fuzz_image -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds

fuzz-image-ci:
	$(MAKE) fuzz-image FUZZ_SECONDS=15
