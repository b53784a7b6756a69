# Two entry points for a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck pytest install clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,spark]'
	touch $(STAMP)

install: $(STAMP)

# The embedded default: a SQLite database, created and seeded with the demo data on first start.
run: $(STAMP)
	WISATA_DATA=$${WISATA_DATA:-sqlite:///./data/wisata.db} $(VENV)/bin/wisata-serve

lint: $(STAMP)
	$(VENV)/bin/ruff check service storage jobs tests bench
	$(VENV)/bin/ruff format --check service storage jobs tests bench
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	bash tests/e2e/install_browser.sh
	bash tests/install_postgres.sh
	bash tests/docker/install_docker.sh
	bash tests/install_java.sh
	$(VENV)/bin/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) build *.egg-info
