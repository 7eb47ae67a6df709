"""Configuration contracts: every variable settings.py reads is documented in .env.example."""

import re

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from knowledge.checks import TAG
from knowledge.signals import check_configuration
from tests.conftest import REPO_ROOT


def documented_variables() -> set[str]:
    text = (REPO_ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def variables_read_by_settings() -> set[str]:
    source = (REPO_ROOT / "rag_site" / "settings.py").read_text()
    pattern = r'(?:env_\w+|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"'
    return set(re.findall(pattern, source))


def test_every_variable_settings_reads_is_listed_in_env_example():
    read = variables_read_by_settings()
    assert read, "the pattern found no variables: it is out of date"
    assert read - documented_variables() == set()


def test_no_module_but_settings_reads_the_environment():
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for package in ("knowledge", "retrieval", "generation")
        for path in (REPO_ROOT / package).rglob("*.py")
        if "os.environ" in path.read_text() or "getenv(" in path.read_text()
    ]
    assert offenders == []


def test_the_cache_is_shared_with_other_processes(settings):
    """Throttle counts live in the cache: a key one process writes, another must read (Redis's
    next database when REDIS_URL is set, else files under RAG_DATA_DIR/cache)."""
    import subprocess
    import sys
    import uuid

    from django.core.cache import cache

    expected = "redis" if settings.REDIS_URL else "filebased"
    assert expected in settings.CACHES["default"]["BACKEND"]
    if settings.REDIS_URL:
        assert settings.CACHES["default"]["LOCATION"] != settings.REDIS_URL  # never the broker's
    key, value = f"shared-{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, 60)
    read = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from django.core.cache import cache; print(cache.get({key!r}))",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert read.stdout.split()[-1] == value


def test_a_component_name_outside_its_table_fails_the_checks(settings):
    settings.RAG_EMBEDDING_BACKEND = "tensorflow"
    settings.RAG_FUSION = "borda"
    problems = [message for message in run_checks(tags=[TAG]) if message.id == "rag.E006"]
    assert [problem.msg for problem in problems] == [
        "RAG_EMBEDDING_BACKEND='tensorflow' is not one of torch, onnx, onnx-int8.",
        "RAG_FUSION='borda' is not one of rrf, weighted.",
    ]
    settings.RAG_EMBEDDING_BACKEND, settings.RAG_FUSION = "onnx", "rrf"
    assert not [message for message in run_checks(tags=[TAG]) if message.is_serious()]


def test_a_worker_refuses_to_start_on_settings_the_checks_refuse(settings):
    check_configuration()  # the test settings pass
    settings.RAG_FUSION = "borda"
    with pytest.raises(ImproperlyConfigured, match="RAG_FUSION='borda' is not one of"):
        check_configuration()
