# The commands we actually run. `make` alone runs lint and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEMO_KB ?= demo
PYTEST_ARGS ?=

.DEFAULT_GOAL := check
.PHONY: check install run worker web up down test test-all test-quick lint fmt typecheck bench eval clean

check: lint test

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: any looser spec pulls gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Install, migrate, create the admin, ingest docs/ as the demo knowledge base, then serve on
# http://127.0.0.1:8000 with a Celery worker beside it (Ctrl-C stops both).
run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py bootstrap_demo
	$(PY) manage.py ingest docs --kb $(DEMO_KB)
	$(PY) manage.py check_index --kb $(DEMO_KB)
	trap 'kill 0' INT TERM EXIT; \
	$(BIN)/celery -A rag_site worker --loglevel=INFO --concurrency=1 & \
	$(PY) manage.py runserver 127.0.0.1:8000 --noreload

worker: $(STAMP)
	$(BIN)/celery -A rag_site worker --loglevel=INFO

web: $(STAMP)
	$(PY) manage.py runserver 127.0.0.1:8000

up:
	docker compose up -d --build

down:
	docker compose down

# Everything but GPU tests. CI sets DATABASE_URL, REDIS_URL and REQUIRE_SERVICES=1.
test: $(STAMP)
	$(BIN)/pytest -m "not gpu" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test-quick: $(STAMP)
	$(BIN)/pytest -m "not gpu and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	@echo "mypy is not set up yet"

bench: $(STAMP)
	$(PY) bench/ingest.py
	$(PY) bench/retrieval.py --beir ../shared/data/scifact

eval: $(STAMP)
	@echo "The evaluate command is not built yet"

clean:
	rm -rf var .pytest_cache .ruff_cache
