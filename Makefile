# Herald developer commands. `make run` and `make test` are all a newcomer needs.
.PHONY: setup run test test-sqlite test-postgres chaos lint format migration screenshots

UV ?= $(shell command -v uv 2>/dev/null || echo "$(CURDIR)/.venv-tools/bin/uv")
VENV := .venv
HERALD := $(VENV)/bin/herald
PYTEST := $(VENV)/bin/python -m pytest

setup: $(VENV)/.synced

$(UV):
	python3 -m venv .venv-tools
	.venv-tools/bin/pip install --quiet uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

# The whole product for a trial: demo org, web app, worker and a local mail catcher (herald dev).
run: setup
	$(HERALD) dev

# The whole suite on SQLite, then on PostgreSQL when HERALD_TEST_DATABASE_URL is set
# (.ci/run starts a throwaway PostgreSQL server and sets it).
test: setup lint test-sqlite
	@if [ -n "$$HERALD_TEST_DATABASE_URL" ]; then $(MAKE) --no-print-directory test-postgres; \
	else echo "PostgreSQL run skipped: HERALD_TEST_DATABASE_URL is not set (.ci/run sets it)."; fi

# Both passes run in parallel worker processes (pytest-xdist), each on a database of its own
# (tests/conftest.py); a test file stays on one worker. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 4
PARALLEL := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-sqlite: setup
	env -u HERALD_TEST_DATABASE_URL $(PYTEST) -q $(PARALLEL) --junitxml=.reports/sqlite.xml

# The browser tests drive the pages, whose queries the route matrix and the API tests
# already run on PostgreSQL; in a real browser they run once, in the SQLite pass.
POSTGRES_PASS_SKIPS := --ignore=tests/browser
test-postgres: setup
	@case "$$HERALD_TEST_DATABASE_URL" in postgresql*) ;; \
	  *) echo "test-postgres needs HERALD_TEST_DATABASE_URL=postgresql+psycopg://..."; exit 2;; esac
	$(PYTEST) -q $(PARALLEL) --junitxml=.reports/postgres.xml $(POSTGRES_PASS_SKIPS)

# The reliability suites at a bigger size than make test runs them (sizes overridable; a
# seed from a failed run replays it: HERALD_CHAOS_SEED=...). PostgreSQL too when
# HERALD_TEST_DATABASE_URL is set.
CHAOS_ENV := HERALD_CHAOS_RECIPIENTS=$${HERALD_CHAOS_RECIPIENTS:-20000} \
	HERALD_CHAOS_WORKERS=$${HERALD_CHAOS_WORKERS:-4} HERALD_CHAOS_KILLS=$${HERALD_CHAOS_KILLS:-30}
chaos: setup
	$(CHAOS_ENV) env -u HERALD_TEST_DATABASE_URL $(PYTEST) -q tests/reliability
	@if [ -n "$$HERALD_TEST_DATABASE_URL" ]; then $(CHAOS_ENV) $(PYTEST) -q tests/reliability; \
	else echo "PostgreSQL chaos skipped: HERALD_TEST_DATABASE_URL is not set."; fi

lint: setup
	$(VENV)/bin/ruff check herald tests bench scripts
	$(VENV)/bin/ruff format --check herald tests bench scripts
	$(VENV)/bin/mypy herald

format: setup
	$(VENV)/bin/ruff check --fix herald tests bench scripts
	$(VENV)/bin/ruff format herald tests bench scripts

# Regenerate a migration from the models: make migration MESSAGE="add campaigns"
migration: setup
	rm -f /tmp/herald-migration.db
	HERALD_DATABASE_URL=sqlite:////tmp/herald-migration.db $(VENV)/bin/alembic upgrade head
	HERALD_DATABASE_URL=sqlite:////tmp/herald-migration.db $(VENV)/bin/alembic revision --autogenerate -m "$(MESSAGE)"

# Regenerate docs/screenshots/ from every page in Debian's Chromium (apt-get install chromium).
screenshots: setup
	$(VENV)/bin/python scripts/screenshots.py
