# The two commands of the README: `make study` and `make test`. Each sets everything up first
# (system packages, .venv with the pinned Python packages) and does nothing more on a second run.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= ci

.PHONY: setup study test release clean-study

setup: $(STAMP)

$(STAMP): pyproject.toml tools/system_packages.sh
	tools/system_packages.sh
	@if [ ! -x $(PY) ]; then \
	  py=$$(command -v python3.11 || command -v python3); \
	  $$py -c 'import sys; assert sys.version_info[:2] == (3, 11), "ausil-lite needs Python 3.11, found " + sys.version' ; \
	  $$py -m venv $(VENV); \
	fi
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

study: setup
	$(PY) -m ausil_lite.study --profile $(PROFILE)

test: setup
	$(PY) -m pytest

# Train the released model on the whole corpus and export it into ausil_lite/models/ (resumable; hours on CPU).
release: setup
	tools/system_packages.sh --release
	$(PY) -m ausil_lite.study.release

clean-study:
	rm -rf book/_build book/chapters
