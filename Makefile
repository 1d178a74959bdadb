# Two commands do everything on a fresh machine:
#   make book   create .venv, install, execute every chapter (quick profile on CPU), build _build/html
#   make test   same set-up, then the whole test suite
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.freqlib-installed
PROFILE ?= auto

.PHONY: book test site-from-results bench clean-build wheelhouse paper-run gpu-carry

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	@# the site test opens every page in Debian's Chromium (system package, no browser download)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: install Chromium to run the browser test of the site"; }
	@touch $(STAMP)

book: $(STAMP)
	$(PY) -m freqlib build --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest -q

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
