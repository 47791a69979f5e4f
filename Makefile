# Two entry points: `make run` (set up, then start the main job) and `make test` (set up, then run
# the whole test suite). Both create .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup bench validate wheel-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# app_pages/serve.py loads the engine and searches the default scenario before the server takes
# its first visitor, then runs `streamlit run app.py` with these flags.
run: setup
	$(BIN)/python -m app_pages.serve --server.headless true --browser.gatherUsageStats false

# The browser test (tests/test_browser.py) needs Debian's Chromium at /usr/bin/chromium; the script
# installs it with apt-get when it is missing and we are root. Without it that one test fails with
# a message pointing here; the rest of the suite still runs.
test: setup
	@bash scripts/ensure_chromium.sh || echo "make test: no /usr/bin/chromium; tests/test_browser.py will fail" >&2
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache test-output
