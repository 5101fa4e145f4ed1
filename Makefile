# make run  — install, migrate, seed a demo, start the service + sandbox partner, print URLs
# make test — install and run the whole suite (real PostgreSQL + Redis started by the suite)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
BENCH ?=

.PHONY: install system-deps messages makemessages run test test-quick lint docs bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

system-deps:
	bash scripts/install_system_deps.sh

install: system-deps $(STAMP) messages

# The translations (<app>/locale/ru/LC_MESSAGES/django.po, locale/ for the project templates)
# compiled to .mo files, which are not kept in git: only those older than their .po are rebuilt.
messages: $(STAMP)
	$(BIN)/python manage.py compilemessages --ignore=.venv --ignore=var -v 0

# After changing user-facing strings: add the new ones to every .po (then translate them; the
# test tests/core/test_translations.py fails while one is missing).
makemessages: $(STAMP)
	$(BIN)/python scripts/makemessages.py

run: install
	$(BIN)/python scripts/run_dev.py

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: $(STAMP) messages
	$(BIN)/python -m pytest --quick -q $(PYTEST_ARGS)

# bandit: no finding of high severity in the shipped code (config in pyproject.toml; each `# nosec`
# says why on its line). pip-audit needs a vulnerability database this CI cannot reach: see
# docs/security.md "Supply chain" for running it where the network allows.
lint: install  # python-ldap builds against the Debian headers system-deps installs
	$(BIN)/ruff check .
	$(BIN)/bandit -c pyproject.toml -r . -q --severity-level high --confidence-level medium

# The documentation site from docs/ into var/site/ (offline; --strict: a broken link, a missing
# anchor or a page left out of mkdocs.yml's nav fails the build).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: install   # make bench BENCH="decisions outbox" runs only those
	$(BIN)/python bench/run_all.py $(BENCH)

clean:
	rm -rf $(VENV) var
