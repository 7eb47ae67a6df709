# The commands we actually run. `make` alone runs lint and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEMO_KB ?= demo
PYTEST_ARGS ?=
BENCH_SIZES ?= 100000

.DEFAULT_GOAL := check
.PHONY: eval-zh check install messages makemessages browser run worker web up down test test-all test-quick lint fmt typecheck bench eval clean

check: lint test

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: any looser spec pulls gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) messages

# The interface's translations: locale/zh_Hant made from locale/zh_Hans (OpenCC), then every .mo
# compiled by GNU gettext's msgfmt (neither is committed). gettext is installed with apt when
# missing and we are root; otherwise say how (pages stay in English until it is there).
messages: $(STAMP)
	@command -v msgfmt >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q --no-install-recommends gettext; \
	else \
		echo "GNU gettext is missing: sudo apt-get install gettext (translations need msgfmt)" >&2; \
	fi
	@if command -v msgfmt >/dev/null 2>&1; then $(PY) manage.py build_catalogues -v 0; fi

# After changing user-facing text: refresh locale/zh_Hans/*.po with the new strings, translate
# them there (no empty or fuzzy entry may stay: tests/knowledge/test_i18n.py), then make messages.
I18N_SCAN := --ignore .venv --ignore var --ignore tests --ignore bench --ignore docs --ignore '*.egg-info'
makemessages: $(STAMP)
	$(PY) manage.py makemessages -l zh_Hans $(I18N_SCAN) --add-location file --no-obsolete --no-wrap
	$(PY) manage.py makemessages -d djangojs -l zh_Hans $(I18N_SCAN) --add-location file --no-obsolete --no-wrap

# Install, migrate, create the admin, ingest docs/ as the demo knowledge base, then serve on
# http://127.0.0.1:8000 with a Celery worker beside it (Ctrl-C stops both).
run: $(STAMP) messages
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py bootstrap_demo
	$(PY) manage.py ingest docs --kb $(DEMO_KB)
	$(PY) manage.py check_index --kb $(DEMO_KB)
	$(PY) manage.py serve 127.0.0.1:8000

worker: $(STAMP)
	$(BIN)/celery -A rag_site worker --loglevel=INFO

web: $(STAMP) messages
	$(PY) manage.py runserver 127.0.0.1:8000

up:
	docker compose up -d --build

down:
	docker compose down

# Debian's Chromium for the browser tests in tests/e2e (never a downloaded browser), and Noto CJK
# so that its screenshots of the Chinese interface show glyphs, not boxes: installed with apt when
# missing and we are root; otherwise say how. Under REQUIRE_SERVICES=1 the browser tests fail
# without Chromium, elsewhere they skip.
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q --no-install-recommends chromium; \
	else \
		echo "Chromium is missing: sudo apt-get install chromium (browser tests need it)" >&2; \
	fi
	@fc-list :lang=zh family 2>/dev/null | grep -q . || ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q --no-install-recommends fonts-noto-cjk; \
	else \
		echo "No Chinese font: sudo apt-get install fonts-noto-cjk (for the screenshots)" >&2; \
	fi

# Tesseract with English, Simplified and Traditional Chinese data (OCR of scanned PDF pages and
# images), and the Noto CJK fonts the OCR tests draw Chinese pages with: installed with apt when
# missing and we are root; otherwise say how (scanned files then fail with "needs OCR").
OCR_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim tesseract-ocr-chi-tra fonts-noto-cjk
.PHONY: ocr
ocr:
	@missing=$$(for package in $(OCR_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$package 2>/dev/null | grep -q "ok installed" || echo $$package; \
	done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "OCR is missing: sudo apt-get install" $$missing >&2; \
	fi
install run worker test test-all test-quick: ocr

# Everything but GPU tests. CI sets DATABASE_URL, REDIS_URL and REQUIRE_SERVICES=1.
test: $(STAMP) browser messages
	$(BIN)/pytest -m "not gpu" $(PYTEST_ARGS)

test-all: $(STAMP) browser messages
	$(BIN)/pytest $(PYTEST_ARGS)

test-quick: $(STAMP) messages
	$(BIN)/pytest -m "not gpu and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy retrieval generation knowledge rag_site

bench: $(STAMP)
	$(PY) bench/ingest.py
	$(PY) bench/retrieval.py --beir ../shared/data/scifact
	$(PY) bench/retrieval.py --beir ../shared/data/cmrc2018
	# 100k generated chunks (a few minutes); add 1000000 to --sizes for the 1M figures
	$(PY) bench/scale.py --sizes $(BENCH_SIZES)
	# one new document made searchable: delta publish beside a full rewrite (add 1000000 to --sizes)
	$(PY) bench/update.py --sizes 10000,$(BENCH_SIZES)
	$(PY) -m bench.judge

# The retrieval bench with every peer (LlamaIndex, Haystack 2, LangChain) in an environment of its
# own, so that the product's never holds them. llama-index-retrievers-bm25 asks for PyStemmer < 3
# where the lock has 3.1: it is installed without its dependencies and runs on 3.1.
PEERS := .venv-peers
PEERS_STAMP := $(PEERS)/.installed
$(PEERS_STAMP): pyproject.toml requirements.lock
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q torch==2.13.0
	$(PEERS)/bin/python -m pip install -q -c requirements.lock -e '.[bench-peers]'
	$(PEERS)/bin/python -m pip install -q --no-deps 'llama-index-retrievers-bm25>=0.8,<0.9'
	touch $(PEERS_STAMP)

.PHONY: bench-peers
bench-peers: $(PEERS_STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PEERS)/bin/python bench/retrieval.py \
		--beir ../shared/data/scifact --skip-rerank --torch-threads 1 --faiss-threads 1
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PEERS)/bin/python bench/retrieval.py \
		--beir ../shared/data/cmrc2018 --skip-rerank --torch-threads 1 --faiss-threads 1

# The fixed evaluation set: the Solana QA set imported as a knowledge base, every question
# through the answering service, report in var/eval/; fails below EVAL_FAIL_UNDER faithfulness.
# Then the judges' own check on labelled hallucinations (bench/judge.py).
EVAL_KB ?= eval-solana
EVAL_DATA ?= ../shared/data/qa/blockchain_solana
EVAL_OUT ?= var/eval
EVAL_FAIL_UNDER ?= 0.8
EVAL_ARGS ?=
eval: $(STAMP)
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py import_eval_dataset $(EVAL_DATA) --kb $(EVAL_KB) --out $(EVAL_OUT)/dataset.jsonl
	$(PY) manage.py evaluate --kb $(EVAL_KB) --dataset $(EVAL_OUT)/dataset.jsonl --out $(EVAL_OUT) \
		--fail-under $(EVAL_FAIL_UNDER) $(EVAL_ARGS)
	$(PY) -m bench.judge

# Chinese answers: CMRC 2018 dev (848 Simplified Chinese Wikipedia paragraphs) imported as a
# knowledge base with the first EVAL_ZH_QUESTIONS questions, answered and judged; the report
# (var/eval-zh/) gives "reference stated" (a reference answer inside the answer) and "own
# context cited". About ten minutes on 2 cores.
EVAL_ZH_KB ?= eval-cmrc
EVAL_ZH_DATA ?= ../shared/data/cmrc2018
EVAL_ZH_OUT ?= var/eval-zh
EVAL_ZH_QUESTIONS ?= 300
eval-zh: $(STAMP)
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py import_eval_dataset $(EVAL_ZH_DATA) --kb $(EVAL_ZH_KB) \
		--out $(EVAL_ZH_OUT)/dataset.jsonl --limit-queries $(EVAL_ZH_QUESTIONS)
	$(PY) manage.py evaluate --kb $(EVAL_ZH_KB) --dataset $(EVAL_ZH_OUT)/dataset.jsonl \
		--out $(EVAL_ZH_OUT) $(EVAL_ARGS)

clean:
	rm -rf var .pytest_cache .ruff_cache
