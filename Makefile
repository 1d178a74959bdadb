# Two commands do everything on a fresh machine:
#   make book   create .venv, install the pinned environment, execute every chapter, build _build/html
#   make test   same set-up, then the whole test suite
# and one to maintain the pins:
#   make lock   re-resolve requirements.lock (hashes) from pyproject.toml and lock-pins.txt
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip install --disable-pip-version-check -q
STAMP   := $(VENV)/.freqlib-installed
PROFILE ?= auto
# The pinned environment: CPython 3.11 on Linux x86_64 with torch 2.13.0+cpu from
# /opt/wheels (see README, "Pinned environment"). Elsewhere, `make book LOCK=`
# installs from pyproject.toml's ranges instead.
LOCK    ?= requirements.lock
# System packages the tests use: Chromium (the site opens in a real browser) and a
# single-node Slurm (sweeps on a real scheduler). Installed with apt-get when root.
APT_TOOLS := chromium:chromium slurmctld:slurm-wlm slurmd:slurm-wlm munged:munge

.PHONY: book test lock site-from-results bench clean-build wheelhouse paper-run gpu-carry

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
ifeq ($(strip $(LOCK)),)
	$(PIP) -e '.[book,test]'
else
	$(PIP) --require-hashes -r $(LOCK)
	$(PIP) --no-deps -e .
endif
	@missing=$$(for t in $(APT_TOOLS); do command -v $${t%%:*} >/dev/null || echo $${t#*:}; done | sort -u | tr '\n' ' '); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$missing(apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: install $$(echo $$missing) (Debian packages) to run the browser and Slurm tests"; fi; \
	fi
	@touch $(STAMP)

book: $(STAMP)
	$(PY) -m freqlib build --profile $(PROFILE)

# Two pytest-xdist workers, each test file on one: on two cores the suite waits on kernels,
# browsers and Slurm often enough that a second worker fills the gaps (tests/conftest.py gives
# each a core and executes each smoke chapter once for both). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) pip-tools
	$(PY) -m piptools compile --generate-hashes --allow-unsafe --strip-extras --upgrade --quiet \
	  --extra book --extra test -c lock-pins.txt --find-links /opt/wheels --no-emit-index-url \
	  -o requirements.lock pyproject.toml

# Build the site from executed notebooks committed under results/paper (no execution).
site-from-results: $(STAMP)
	$(PY) -m freqlib build --executed results/paper

bench: $(STAMP)
	$(PY) bench/run_all.py --out bench/results.json

# The paper profile on a lent GPU (docs/gpu-session.md). Here: wheels for the offline
# machine (Python 3.12, manylinux x86_64) into .whl/, and the carry folder .carry/.
wheelhouse: $(STAMP)
	$(PY) -m freqlib wheelhouse --dest .whl --python 3.12

gpu-carry: wheelhouse
	$(PY) -m freqlib paper-run --stage

# On a CUDA machine: one time-boxed, resumable call (repeat until it reports nothing left).
BUDGET ?= 540
paper-run: $(STAMP)
	$(PY) -m freqlib paper-run --budget-s $(BUDGET) --out .carry/run

clean-build:
	rm -rf _build
