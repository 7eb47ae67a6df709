"""The operators' metrics at /metrics: scraped after real ingestion and answers, they list each
metric with plausible values; callers that are not allowed learn nothing."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from knowledge import answering, ingestion
from knowledge.models import Document
from tests.conftest import REPO_ROOT
from tests.factories import add_text, make_knowledge_base
from tests.openai_server import Reply

pytestmark = pytest.mark.django_db

HANDBOOK = (
    "Holidays. Every employee has twenty-five days of paid holiday a year. "
    "Unused days may be carried over until the end of March.\n\n"
    "Expenses. Travel costs are refunded within thirty days of the claim."
)


def scrape(client, **extra) -> dict[tuple[str, frozenset], float]:
    """GET /metrics as the given caller: {(sample name, labels): value}."""
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_after_real_ingestion_and_answers(client, extractive_mode, settings, llm_server):
    before = scrape(client)
    knowledge_base = make_knowledge_base("人事 handbook")
    indexed = ingestion.ingest_document(add_text(knowledge_base, "handbook.txt", HANDBOOK).pk)
    assert indexed.state == Document.State.INDEXED and indexed.chunk_count > 0
    failed = ingestion.ingest_document(add_text(knowledge_base, "blank.txt", " \n\n \n").pk)
    assert failed.state == Document.State.FAILED
    add_text(knowledge_base, "later.txt", "Parking. Staff park in the north lot.")  # queued

    extractive = answering.answer_question("How many days of holiday a year?", [knowledge_base])
    assert extractive.mode == "extractive" and extractive.citations
    settings.RAG_LLM_BASE_URL = llm_server.url
    settings.RAG_LLM_MAX_RETRIES = 0
    llm_server.script(Reply(text="Twenty-five days [1]."))
    assert answering.answer_question("Holidays?", [knowledge_base]).mode == "llm"
    llm_server.script(Reply(status=500, error_message="CUDA out of memory"))
    fallback = answering.answer_question("Holidays?", [knowledge_base])
    assert fallback.mode == "extractive" and fallback.notice
    assert client.get("/healthz").status_code == 200

    after = scrape(client)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Ingestion: the document, its pages and chunks; the blank file's failure by its reason.
    assert grew("rag_ingestion_documents_indexed_total") == 1
    assert grew("rag_ingestion_chunks_total") == indexed.chunk_count
    assert grew("rag_ingestion_pages_total") == (indexed.page_count or 0)
    failures = {
        dict(labels)["reason"]: n - value(before, name, **dict(labels))
        for (name, labels), n in after.items()
        if name == "rag_ingestion_documents_failed_total"
    }
    assert {reason: n for reason, n in failures.items() if n} == {"empty_document": 1}
    # Answers by mode, each stage observed; the model's failure and the fallback it caused.
    assert grew("rag_answers_total", mode="extractive") == 2
    assert grew("rag_answers_total", mode="llm") == 1
    assert grew("rag_answer_stage_seconds_count", stage="retrieval") == 3
    assert grew("rag_answer_stage_seconds_count", stage="generation") == 3
    assert grew("rag_answer_stage_seconds_count", stage="total") == 3
    assert grew("rag_answer_stage_seconds_count", stage="first_token") >= 1
    assert 0 < grew("rag_answer_stage_seconds_sum", stage="retrieval") < 60
    assert grew("rag_llm_fallbacks_total", streamed="false") == 1
    assert (
        sum(n for (name, _), n in after.items() if name == "rag_llm_errors_total")
        - sum(n for (name, _), n in before.items() if name == "rag_llm_errors_total")
        == 1
    )
    # Request latency per view, labelled by method and status class.
    health = {"view": "knowledge:health", "method": "GET", "status": "2xx"}
    assert grew("rag_request_duration_seconds_count", **health) == 1
    assert 0 < grew("rag_request_duration_seconds_sum", **health) < 60
    # Read from the database at the scrape: queue depth, index version and size per base.
    assert value(after, "rag_ingestion_queue_documents", state="queued") == 1
    assert value(after, "rag_ingestion_queue_documents", state="processing") == 0
    assert ("rag_ingestion_queue_oldest_seconds", frozenset()) in after
    assert 0 <= value(after, "rag_ingestion_queue_oldest_seconds") < 600
    knowledge_base.refresh_from_db()
    name = "人事 handbook"
    assert value(after, "rag_index_version", knowledge_base=name) == knowledge_base.index_version
    assert knowledge_base.index_version >= 1
    assert value(after, "rag_index_chunks", knowledge_base=name) == indexed.chunk_count
    assert value(after, "rag_index_documents", knowledge_base=name) == 1


def test_the_scrape_itself_is_timed(client):
    scrape(client)
    samples = scrape(client)
    labels = {"view": "metrics", "method": "GET", "status": "2xx"}
    assert value(samples, "rag_request_duration_seconds_count", **labels) >= 1


def test_callers_from_other_addresses_need_the_token_or_an_allowed_address(client, settings):
    outsider = {"REMOTE_ADDR": "10.1.2.3"}
    settings.RAG_METRICS_TOKEN = ""
    assert client.get("/metrics", **outsider).status_code == 404
    # Nothing but the site's plain not-found page: no metric names.
    assert b"rag_" not in client.get("/metrics", **outsider).content
    settings.RAG_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", **outsider).status_code == 404
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess", **outsider)
    assert wrong.status_code == 404
    assert b"rag_" not in wrong.content
    assert "rag_answers" in str(
        scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-token", **outsider).keys()
    )
    settings.RAG_METRICS_TOKEN = ""
    settings.RAG_METRICS_ALLOWED_IPS = [ipaddress.ip_network("10.1.0.0/16")]
    scrape(client, **outsider)
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 404
    # IPv6 loopback and a dual-stack socket's IPv4 loopback count as loopback.
    scrape(client, REMOTE_ADDR="::1")
    scrape(client, REMOTE_ADDR="::ffff:127.0.0.1")
    settings.RAG_METRICS_LOOPBACK = False  # e.g. behind a proxy on the same machine
    assert client.get("/metrics").status_code == 404


def test_with_a_multiprocess_folder_the_web_shows_the_workers_counts(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR: a worker process's counts appear in another process's
    /metrics (each runs manage.py as gunicorn and Celery would)."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_EMBEDDING_MODEL": "hashing:256",
        "DATABASE_URL": "",
    }

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    manage("migrate", "--no-input", "-v", "0")
    worker = (
        "from knowledge import metrics; metrics.observe_indexed(3, 7); "
        "metrics.observe_failed('time_limit')"
    )
    manage("shell", "-v", "0", "-c", worker)
    manage("shell", "-v", "0", "-c", worker)
    web = (
        "from django.test import Client; "
        "print(Client().get('/metrics', HTTP_HOST='127.0.0.1').content.decode())"
    )
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(manage("shell", "-v", "0", "-c", web))
        for sample in family.samples
    }
    assert value(samples, "rag_ingestion_documents_indexed_total") == 2
    assert value(samples, "rag_ingestion_chunks_total") == 14
    assert value(samples, "rag_ingestion_documents_failed_total", reason="time_limit") == 2
    assert ("rag_ingestion_queue_documents", frozenset({("state", "queued")})) in samples
