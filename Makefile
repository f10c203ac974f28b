# One-command entry points. Everything runs inside .venv, made here from the pinned requirements.txt.
#   make study   the whole study:  snakemake --cores 1 --resources gpu=1
#   make demo    the CPU demo:     snakemake --cores 2 --configfile config/smoke.yaml
#   make test    the test suite (what CI runs), on two pytest-xdist workers, a test file to each
#   make test-fast  the tests that start neither Snakemake nor a system (markers in pyproject.toml): about 1.5 min
#   make lint    the declared style and Snakemake's lint (CI runs it too); make format applies the style

VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
CORES ?= 1
GPUS ?= 1

.PHONY: venv study demo test test-fast lint format lock local clean-results

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

study: venv
	$(SNAKEMAKE) --cores $(CORES) --resources gpu=$(GPUS)

demo: venv
	$(SNAKEMAKE) --cores 2 --configfile config/smoke.yaml
	@echo "The demo's report: studies/demo/report.html (in a browser: file://$(CURDIR)/studies/demo/report.html)"

# Two workers (pytest-xdist), a test file each at a time: module fixtures are made once.
test: venv
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: venv
	$(PY) -m pytest -q -m "not workflow and not system" -n 2 --dist loadfile

# The declared style (pyproject.toml): ruff for Python, snakefmt for the Snakefiles, Snakemake's own lint.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check .
	$(SNAKEMAKE) --lint

# Apply the declared style to the whole tree.
format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/snakefmt .

# requirements.txt keeps its leading comment; the jobs' environments and the images' install lists follow it.
lock: venv
	{ grep '^#' requirements.txt; $(PY) -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements.txt.new
	mv requirements.txt.new requirements.txt
	$(PY) tools/environments.py

clean-results:
	rm -rf results logs benchmarks report.html

# Machine-local settings in local.yaml (git-ignored, read by every command): a local copy of the archive,
# so that `make study` and `make demo` work offline.  make local ARCHIVE=/data/cifar-10-python.tar.gz
local: venv
	@test -n "$(ARCHIVE)" || { echo "usage: make local ARCHIVE=/path/to/cifar-10-python.tar.gz"; exit 2; }
	$(PY) -m lrstudy.data.local_settings "$(ARCHIVE)" > local.yaml.tmp && mv local.yaml.tmp local.yaml \
		|| { rm -f local.yaml.tmp; exit 1; }
	@cat local.yaml
