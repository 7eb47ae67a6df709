"""A real Celery worker process: ingestion through the broker, and recovery after SIGKILL.

Runs against the broker the suite is configured with: Redis when REDIS_URL is set, otherwise
the embedded file-based broker that `make run` uses by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from knowledge import dispatch, documents, indexing, search
from knowledge.locks import knowledge_base_lock
from knowledge.models import Chunk, Document
from tests.conftest import PDFS
from tests.factories import add_file, make_knowledge_base
from tests.workers import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(condition: Callable[[], bool], timeout: float, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out; worker log:\n{worker.log()}")


def settled(*documents: Document) -> Callable[[], bool]:
    ids = [document.pk for document in documents]
    done = (Document.State.INDEXED, Document.State.FAILED)
    return lambda: Document.objects.filter(pk__in=ids, state__in=done).count() == len(ids)


@pytest.mark.usefixtures("tesseract")
def test_a_worker_ingests_real_pdfs_sent_through_the_broker(worker):
    knowledge_base = make_knowledge_base("pdfs")
    paper = add_file(knowledge_base, PDFS / "naacl06-shinyama.pdf")
    locked = add_file(knowledge_base, PDFS / "libreoffice-writer-password.pdf")
    scanned = add_file(knowledge_base, PDFS / "pdf-with-jbig2.pdf")
    for document in (paper, locked, scanned):
        dispatch.enqueue_ingestion(document)
    wait_for(settled(paper, locked, scanned), 180, worker)

    paper.refresh_from_db()
    assert paper.state == Document.State.INDEXED and paper.page_count == 8
    pages = set(paper.chunks.values_list("page", flat=True))
    assert pages == set(range(1, 9))
    assert Document.objects.get(pk=locked.pk).error.startswith("This PDF is password-protected")
    scanned.refresh_from_db()  # read with OCR by the worker
    assert scanned.state == Document.State.INDEXED
    assert "Doesn't" in scanned.chunks.get().text and scanned.chunks.get().page == 1
    assert indexing.check_index(knowledge_base).problems == []
    hits = search.search_passages([knowledge_base], "paraphrase acquisition named entities")
    assert hits and hits[0].document_id == paper.pk


def test_a_worker_killed_mid_document_leaves_it_indexed_once_after_restart(worker):
    knowledge_base = make_knowledge_base("pdfs")
    document = add_file(knowledge_base, PDFS / "GeoTopo-komprimiert.pdf")
    dispatch.enqueue_ingestion(document)

    def embedding_under_way() -> bool:
        return 15 <= Document.objects.get(pk=document.pk).progress < 90

    wait_for(embedding_under_way, 180, worker)
    worker.kill()
    assert Document.objects.get(pk=document.pk).state == Document.State.PROCESSING
    worker.start()
    wait_for(settled(document), 240, worker)

    document.refresh_from_db()
    assert document.state == Document.State.INDEXED, worker.log()
    chunks = Chunk.objects.filter(document=document)
    orders = list(chunks.values_list("order", flat=True))
    assert len(orders) == len(set(orders)) == document.chunk_count > 0
    assert Chunk.objects.filter(knowledge_base=knowledge_base).count() == document.chunk_count
    assert document.attempts >= 2
    assert indexing.check_index(knowledge_base).problems == []


def test_a_document_whose_message_was_lost_is_sent_again_by_the_running_workers_sweep(worker):
    """No message was ever sent for it (the broker was down at upload): once it has waited
    RAG_REQUEUE_AFTER_SECONDS, a worker that is already running picks it up."""
    wait_for(lambda: "ready" in worker.log(), 120, worker)
    document = add_file(make_knowledge_base("pdfs"), PDFS / "naacl06-shinyama.pdf")
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Document.objects.filter(pk=document.pk).update(updated_at=an_hour_ago)
    wait_for(settled(document), 180, worker)
    assert Document.objects.get(pk=document.pk).state == Document.State.INDEXED
    assert "Took over 1 abandoned document(s)" in worker.log()


def test_a_worker_retries_an_index_publish_while_another_process_holds_the_lock(worker):
    knowledge_base = make_knowledge_base("pdfs")
    document = add_file(knowledge_base, PDFS / "naacl06-shinyama.pdf")
    dispatch.enqueue_ingestion(document)
    wait_for(settled(document), 180, worker)
    worker.kill()
    worker.env["RAG_LOCK_TIMEOUT"] = "1"
    worker.start()
    with knowledge_base_lock(knowledge_base.pk):  # this test process holds it
        started = time.monotonic()
        documents.set_document_enabled(document, False)  # queues the publish on commit
        assert time.monotonic() - started < 0.2
        wait_for(lambda: "retry: Retry in 2s" in worker.log(), 120, worker)
    wait_for(lambda: indexing.check_index(knowledge_base).problems == [], 60, worker)
    knowledge_base.refresh_from_db()
    assert len(indexing.loaded_index(knowledge_base).dense) == 0
