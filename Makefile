# The two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# every install takes the exact versions of constraints.txt (pyproject.toml states ranges)
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.installed
STAMP_MD := $(VENV)/.installed-md

.PHONY: demo test venv bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first: the CPU wheel is found locally, and the constraints keep anything that
	# needs torch (e3nn, Lightning) from pulling a newer CUDA build.
	$(PIP) torch
	$(PIP) -e ".[test]"
	touch $(STAMP)

# The molecular-dynamics extra (RDKit, ASE, tblite), so that the suite tests it too.
$(STAMP_MD): $(STAMP)
	$(PIP) -e ".[test,md]"
	touch $(STAMP_MD)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/graphdyn demo

# GRAPHDYN_REQUIRE_NATIVE: where the C kernels fail to build, the suite fails instead of
# skipping their tests (a green suite means the default CPU path works)
test: $(STAMP_MD)
	GRAPHDYN_REQUIRE_NATIVE=1 $(BIN)/python -m pytest

# estag_step.py builds aspirin with RDKit (md extra) and AdK from MDAnalysisTests (test extra).
bench: $(STAMP_MD)
	$(BIN)/python benchmarks/spring_training.py
	$(BIN)/python benchmarks/physics_throughput.py
	$(BIN)/python benchmarks/estag_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
