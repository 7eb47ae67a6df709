"""Shared fixtures. Tests use the real services named by DATABASE_URL and REDIS_URL; with
REQUIRE_SERVICES=1 (CI) a missing PostgreSQL or Redis fails the run instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No web worker starts for real in the tests: servers they spawn skip loading the models.
os.environ.setdefault("RAG_WARM_UP", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PDFS = SHARED_DATA / "pdfs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the embedded file broker are left out (deselected, not skipped) when REDIS_URL
    names a real Redis, and tests of PostgreSQL's own behaviour on other databases: each of
    CI's two runs has no skips, and between them every test runs."""
    from django.conf import settings

    left_out = set()
    if settings.REDIS_URL:
        left_out.add("embedded_broker")
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        left_out.add("postgresql")
    kept = [item for item in items if not any(item.get_closest_marker(m) for m in left_out)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


def pytest_sessionstart(session: pytest.Session) -> None:
    from django.conf import settings

    # WhiteNoise warns on every request when STATIC_ROOT is missing (collectstatic never ran
    # in a fresh clone); the tests do not need collected files, only the folder.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    if os.environ.get("REQUIRE_SERVICES") != "1":
        return

    problems = []
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        problems.append("DATABASE_URL does not name a PostgreSQL database")
    else:
        import psycopg

        try:
            psycopg.connect(settings.DATABASE_URL, connect_timeout=5).close()
        except psycopg.Error as error:
            problems.append(f"PostgreSQL is unreachable: {error}")
    if not settings.REDIS_URL:
        problems.append("REDIS_URL is not set")
    else:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5).ping()
        except redis.RedisError as error:
            problems.append(f"Redis is unreachable: {error}")
    if not SHARED_DATA.is_dir():
        problems.append(f"the shared data folder {SHARED_DATA} is missing")
    if problems:
        pytest.exit("REQUIRE_SERVICES=1 but " + "; ".join(problems), returncode=3)


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    """Each test gets its own uploads, indexes and locks, and an empty cache (throttle counts
    live there, shared by every process as in production)."""
    from django.core.cache import cache

    settings.RAG_DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "uploads"
    settings.RAG_DATA_DIR.mkdir()
    cache.clear()
    return settings.RAG_DATA_DIR


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Creating users is the slowest part of many tests with the real hasher; tests need no
    protection against brute force."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def eager_celery():
    """Run Celery tasks in-process: the real task code, without a worker."""
    from rag_site.celery import app

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.fixture
def llm_server():
    """A real HTTP server speaking the OpenAI chat API as vLLM does (tests/openai_server.py);
    queue replies with llm_server.script(Reply(...)), point clients at llm_server.url."""
    from tests.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


@pytest.fixture
def extractive_mode(settings):
    """No LLM server and the weightless hashing embedder: fast answers through the real code."""
    from knowledge import components
    from tests.openai_server import DEFAULT_MODEL

    settings.RAG_EMBEDDING_MODEL = "hashing:256"
    settings.RAG_LLM_BASE_URL = ""
    settings.RAG_LLM_MODEL = DEFAULT_MODEL
    components.reset_llm_clients()
    yield
    components.reset_llm_clients()


@pytest.fixture
def tesseract() -> None:
    """Tesseract with English and Chinese data and the Noto CJK fonts (`make ocr` installs
    them): tests that read scans skip without them, except under REQUIRE_SERVICES=1 (CI),
    where they fail."""
    from retrieval.errors import MissingDependencyError
    from retrieval.ocr import TesseractOcr
    from tests.scans import FONT

    try:
        TesseractOcr().ensure_installed()
        problem = None if FONT.is_file() else f"the font {FONT} is missing"
    except MissingDependencyError as error:
        problem = str(error)
    if problem and os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"OCR tests need `make ocr`: {problem}")
    if problem:
        pytest.skip(f"OCR tests need `make ocr`: {problem}")


@pytest.fixture(scope="session")
def catalogues() -> None:
    """The interface's translation catalogues, built when missing or stale (zh_Hant from zh_Hans,
    then msgfmt), so that `pytest` alone works from a clean clone; Django then forgets any
    catalogue it had read before."""
    from django.conf import settings
    from django.test.signals import setting_changed

    from knowledge.catalogues import build_catalogues

    build_catalogues()
    setting_changed.send(None, setting="LOCALE_PATHS", value=settings.LOCALE_PATHS, enter=False)


# --- Personas: who reads and who manages the "handbook" knowledge base --------------------------


@pytest.fixture
def owner():
    """A staff member of the handbook: reads it and manages its documents."""
    from tests.factories import make_user

    return make_user("olivia", is_staff=True)


@pytest.fixture
def member():
    """A plain member of the handbook: reads it, changes nothing."""
    from tests.factories import make_user

    return make_user("mario")


@pytest.fixture
def outsider():
    """A staff member of no knowledge base: staff rights give it no documents."""
    from tests.factories import make_user

    return make_user("oscar", is_staff=True)


@pytest.fixture
def handbook(owner, member):
    from tests.factories import make_knowledge_base

    return make_knowledge_base("handbook", members=[owner, member])


from tests.workers import start_worker, worker  # noqa: E402, F401  (fixtures for every test)
