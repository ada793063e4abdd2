# make .venv   create the virtual environment and install dbkmc (editable) into it
# make run     run the pipeline (CONFIG=config/config.yaml, CORES=2)
# make test    run the test suite on CORES pytest-xdist workers (PYTEST_ARGS="-k name" to narrow it)
# make clean   remove pipeline outputs

PYTHON ?= python3
CORES ?= 2
CONFIG ?= config/config.yaml
PYTEST_ARGS ?=
VENV := .venv

.PHONY: .venv venv run test clean

.venv venv: $(VENV)/.installed

# torch is pinned and installed first so pip takes the CPU wheel on this machine's
# disk; a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install torch==2.13.0
	$(VENV)/bin/pip install -e '.[dev]'
	# torchani only cross-checks our AEVs in the tests; --no-deps keeps its own
	# requirements from touching the pinned torch.
	$(VENV)/bin/pip install --no-deps torchani==2.9.0
	# compile the kMC engine's numba kernels now (cached next to the modules), not in the first kMC job
	$(VENV)/bin/python -m dbkmc.kmc.compile_kernels
	touch $@

# Snakemake also reads profiles/default/ by itself (the workflow profile). The config is
# checked first: a problem Snakemake's own config loading cannot report (a YAML value that
# refers to itself) is then one line, like every other config error.
run: $(VENV)/.installed
	$(VENV)/bin/dbkmc check-config $(CONFIG)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG)

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -rs -n $(CORES) $(PYTEST_ARGS)

clean:
	rm -rf results .snakemake
