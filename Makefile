# Opportuna: `make demo` to try it, `make test` to run the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint check-python venv clean messages

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { \
		echo "Opportuna needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)."; \
		echo "Install a newer Python and run again, e.g. 'make demo PYTHON=python3.12'."; \
		exit 1; }

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/opportuna migrate --no-input
	$(BIN)/opportuna demo --if-empty
	$(BIN)/opportuna serve

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Run from the package so LOCALE_PATHS (src/opportuna/locale) is where the catalogue goes;
# the data folder stays the project's one instead of a stray src/opportuna/data.
messages: $(STAMP)
	cd src/opportuna && export OPPORTUNA_DATA_DIR="$${OPPORTUNA_DATA_DIR:-$(CURDIR)/data}" && \
		../../$(BIN)/opportuna makemessages -l it --no-obsolete --ignore=migrations && \
		../../$(BIN)/opportuna compilemessages

clean:
	rm -rf $(VENV)
