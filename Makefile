# Two commands do everything on a fresh machine (they create and fill .venv first):
#   make reproduce   run every notebook (smoke profile) and build reports/smoke/
#   make test        ruff (lint + format check), then the whole test suite: unit tests, real-data tests, every notebook via nbval,
#                    and the static site (make site) opened in headless Chromium (make browser installs it)
#   make site        reports/smoke/ (make reproduce) rendered as a static HTML site in site/: open site/index.html
VENV ?= .venv
PYTHON ?= python3
CONSTRAINTS ?= .ci/constraints.txt
PROFILE ?= smoke
SITE ?= site
REPRODUCE_ARGS ?=  # e.g. --force, --verify-data, --dataset amazon:Musical_Instruments
BIN := $(VENV)/bin
STAMP := $(VENV)/.textinterest-installed

# Tests and notebooks run quiet and offline; real-data tests use the shared data folder when present.
export TQDM_DISABLE := 1
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TRANSFORMERS_VERBOSITY := error
export TEXTINTEREST_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: install lint test unit reproduce site browser clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) torch==2.13.0
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev,onnx,serve,scale,peers,lora]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint browser site
	TEXTINTEREST_SITE=$(SITE) TEXTINTEREST_REQUIRE_BROWSER=1 $(BIN)/python -m pytest --nbval-lax --nbval-current-env tests notebooks

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not realdata" tests

reproduce: $(STAMP)
	$(BIN)/textinterest reproduce --profile $(PROFILE) $(REPRODUCE_ARGS)

# The executed smoke notebooks and the report index as static HTML (nbconvert), no network needed to read it.
site: $(STAMP)
	$(BIN)/textinterest reproduce --profile smoke $(REPRODUCE_ARGS)
	$(BIN)/python -m textinterest.apps.site reports/smoke $(SITE)

# Headless Chromium for the site's browser test (tests/test_site.py): the Debian package, as root or with sudo.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; }

clean:
	rm -rf $(VENV) reports/smoke $(SITE)
