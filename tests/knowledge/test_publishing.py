"""Disabling, enabling and deleting documents change the database at once and publish the
indexes in one task per knowledge base queued on commit: a web request never waits on the
knowledge base's lock, and search leaves disabled and deleted documents out before the publish."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from knowledge import documents, indexing, ingestion, search, tasks
from knowledge.locks import LockTimeoutError, knowledge_base_lock
from knowledge.models import Document, KnowledgeBase
from tests.factories import add_text, make_knowledge_base, make_user
from tests.knowledge.apiclient import token_client
from tests.knowledge.test_locks import backend  # noqa: F401  (file lock and Redis lock)

pytestmark = pytest.mark.django_db

POLICY = "# Travel\n\nMeal receipts above 25 euros are uploaded within 30 days of the trip.\n"
QUERY = "meal receipts"
FAST = 0.2  # seconds a disable, enable or delete may take while the lock is held elsewhere


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"


@contextmanager
def locked_by_another_process(knowledge_base: KnowledgeBase, seconds: float = 60) -> Iterator:
    """Another process holds the knowledge base's lock until the block ends (or seconds pass)."""
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(knowledge_base.pk, held, release, seconds))
    holder.start()
    try:
        assert held.wait(10), "the other process did not get the lock"
        yield holder
    finally:
        release.set()
        holder.join(10)


def _hold(knowledge_base_id: int, held, release, seconds: float) -> None:
    with knowledge_base_lock(knowledge_base_id):
        held.set()
        release.wait(seconds)


def indexed(knowledge_base: KnowledgeBase, name: str) -> Document:
    """An indexed document of the travel policy (its name makes each one's content unique)."""
    document = ingestion.ingest_document(add_text(knowledge_base, name, f"{POLICY}\n{name}").pk)
    assert document is not None and document.state == Document.State.INDEXED
    return document


def index_ids(knowledge_base: KnowledgeBase) -> set[int]:
    knowledge_base.refresh_from_db()
    return set(indexing.loaded_index(knowledge_base).dense.ids().tolist())


def test_search_follows_the_document_state_before_the_publish_runs(
    django_capture_on_commit_callbacks, eager_celery
):
    knowledge_base = make_knowledge_base()
    document = indexed(knowledge_base, "travel.md")
    chunk_ids = set(document.chunks.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks() as queued:
        documents.set_document_enabled(document, False)
        assert search.search_passages([knowledge_base], QUERY) == []
    assert chunk_ids <= index_ids(knowledge_base)  # the index still holds it: search filtered
    assert len(queued) == 1
    with django_capture_on_commit_callbacks() as queued:
        documents.set_document_enabled(document, True)
        found = search.search_passages([knowledge_base], QUERY)  # the index still holds it
    assert {passage.document_id for passage in found} == {document.pk}
    with django_capture_on_commit_callbacks() as queued:
        documents.delete_document(document)
        assert search.search_passages([knowledge_base], QUERY) == []
    assert chunk_ids <= index_ids(knowledge_base)
    queued[0]()  # the publish
    assert index_ids(knowledge_base) == set()
    assert indexing.check_index(knowledge_base).problems == []


def test_an_enabled_document_is_found_once_the_publish_holds_it(
    django_capture_on_commit_callbacks, eager_celery
):
    knowledge_base = make_knowledge_base()
    document = indexed(knowledge_base, "travel.md")
    with django_capture_on_commit_callbacks(execute=True):
        documents.set_document_enabled(document, False)
    assert index_ids(knowledge_base) == set()
    with django_capture_on_commit_callbacks() as queued:
        documents.set_document_enabled(document, True)
    assert search.search_passages([knowledge_base], QUERY) == []  # not published yet
    queued[0]()
    assert search.search_passages([knowledge_base], QUERY)
    assert indexing.check_index(knowledge_base).problems == []


def timed(act) -> tuple[float, object]:
    started = time.perf_counter()
    result = act()
    return time.perf_counter() - started, result


def test_pages_and_the_api_answer_at_once_while_another_process_holds_the_lock(
    backend,  # noqa: F811
    settings,
    django_capture_on_commit_callbacks,
    eager_celery,
):
    settings.RAG_LOCK_TIMEOUT = 30
    owner = make_user("owner", is_staff=True)
    knowledge_base = make_knowledge_base(members=[owner])
    page_document, api_document = indexed(knowledge_base, "a.md"), indexed(knowledge_base, "b.md")
    page = Client()
    page.force_login(owner)
    api = token_client(owner)

    def action(document: Document, name: str):
        url = reverse("knowledge:document_action", args=[document.pk, name])
        return lambda: page.post(url)

    acts = [
        ("page disable", action(page_document, "disable"), 302),
        ("page enable", action(page_document, "enable"), 302),
        ("page delete", action(page_document, "delete"), 302),
        ("api delete", lambda: api.delete(f"/api/v1/documents/{api_document.pk}/"), 204),
    ]
    timings, published = {}, []
    with locked_by_another_process(knowledge_base):
        for name, act, status in acts:
            with django_capture_on_commit_callbacks() as queued:
                timings[name], response = timed(act)
            assert response.status_code == status, name
            assert len(queued) == 1, name  # one publish for the knowledge base
            published += queued
    print(f"{backend} lock held elsewhere:", {k: f"{v * 1000:.0f} ms" for k, v in timings.items()})
    assert max(timings.values()) < FAST, timings
    assert search.search_passages([knowledge_base], QUERY) == []
    for publish in published:  # the queued tasks, once the lock is free
        publish()
    assert index_ids(knowledge_base) == set()
    assert indexing.check_index(knowledge_base).problems == []


def test_an_admin_bulk_action_queues_one_publish_per_knowledge_base(
    settings, django_capture_on_commit_callbacks, eager_celery
):
    settings.RAG_LOCK_TIMEOUT = 30
    root = Client()
    root.force_login(make_user("root", is_staff=True, is_superuser=True))
    first, second = make_knowledge_base("first"), make_knowledge_base("second")
    documents = [indexed(first, "a.md"), indexed(first, "b.md"), indexed(second, "c.md")]
    url = reverse("admin:knowledge_document_changelist")
    for action in ("disable", "enable", "delete_with_index"):
        form = {"action": action, "_selected_action": [document.pk for document in documents]}
        with (
            locked_by_another_process(first),
            locked_by_another_process(second),
            django_capture_on_commit_callbacks() as queued,
        ):
            elapsed, response = timed(lambda form=form: root.post(url, form))
        assert response.status_code == 302
        assert elapsed < FAST, (action, elapsed)
        assert len(queued) == 2, action  # once per knowledge base, not once per row
        for publish in queued:
            publish()
        for knowledge_base in (first, second):
            assert indexing.check_index(knowledge_base).problems == []
    assert not Document.objects.exists()
    assert index_ids(first) == index_ids(second) == set()


def test_run_in_process_the_publish_task_leaves_a_lock_timeout_to_its_caller(
    settings, eager_celery
):
    """RAG_CELERY_EAGER: the caller answers the timeout (503); a worker retries instead
    (tests/knowledge/test_worker.py)."""
    settings.RAG_LOCK_TIMEOUT = 0.1
    knowledge_base = make_knowledge_base()
    with locked_by_another_process(knowledge_base), pytest.raises(LockTimeoutError):
        tasks.sync_index.apply(args=[knowledge_base.pk])


def test_the_publish_task_of_a_deleted_knowledge_base_does_nothing(eager_celery):
    knowledge_base = make_knowledge_base()
    knowledge_base_id = knowledge_base.pk
    knowledge_base.delete()
    assert tasks.sync_index.apply(args=[knowledge_base_id]).get() is None


@pytest.mark.django_db(transaction=True)
def test_a_lock_timeout_in_a_request_is_a_503_with_retry_after(settings, eager_celery):
    """With RAG_CELERY_EAGER the queued publish runs inside the request, after its commit: the
    one case where a request waits on the lock."""
    settings.RAG_LOCK_TIMEOUT = 0.05
    owner = make_user("owner", is_staff=True)
    knowledge_base = make_knowledge_base(members=[owner])
    page_document, api_document = indexed(knowledge_base, "a.md"), indexed(knowledge_base, "b.md")
    api = token_client(owner)
    page = Client()
    page.force_login(owner)
    with locked_by_another_process(knowledge_base):
        answer = api.delete(f"/api/v1/documents/{api_document.pk}/")
        shown = page.post(reverse("knowledge:document_action", args=[page_document.pk, "disable"]))
    assert answer.status_code == 503
    assert answer["Retry-After"] == str(LockTimeoutError.retry_after)
    assert answer.json()["code"] == "index_busy"
    assert shown.status_code == 503
    assert shown["Retry-After"] == str(LockTimeoutError.retry_after)
    assert "try again in a minute" in shown.content.decode()
    # The change itself was committed (search leaves it out); the next publish catches up.
    assert search.search_passages([knowledge_base], QUERY) == []
    indexing.sync_index(knowledge_base)
    assert indexing.check_index(knowledge_base).problems == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("catalogues")
@pytest.mark.parametrize(
    ("language", "words"),
    [("zh-Hans", "知识库的索引正由另一个任务更新"), ("zh-Hant", "知識庫的索引正由另一個任務更新")],
)
def test_the_busy_answer_speaks_chinese(settings, eager_celery, language, words):
    settings.RAG_LOCK_TIMEOUT = 0.05
    owner = make_user("owner", is_staff=True)
    knowledge_base = make_knowledge_base(members=[owner])
    page_document, api_document = indexed(knowledge_base, "a.md"), indexed(knowledge_base, "b.md")
    page = Client(headers={"accept-language": language})
    page.force_login(owner)
    with locked_by_another_process(knowledge_base):
        answer = token_client(owner).delete(
            f"/api/v1/documents/{api_document.pk}/", HTTP_ACCEPT_LANGUAGE=language
        )
        shown = page.post(reverse("knowledge:document_action", args=[page_document.pk, "delete"]))
    assert answer.status_code == shown.status_code == 503
    assert words in answer.json()["detail"] and answer.json()["code"] == "index_busy"
    assert words in shown.content.decode()


def test_the_admins_delete_selected_removes_files_and_publishes_once_per_knowledge_base(
    django_capture_on_commit_callbacks, eager_celery
):
    root = Client()
    root.force_login(make_user("root", is_staff=True, is_superuser=True))
    first, second = make_knowledge_base("first"), make_knowledge_base("second")
    documents = [indexed(first, "a.md"), indexed(first, "b.md"), indexed(second, "c.md")]
    files = [document.file.path for document in documents]
    form = {
        "action": "delete_selected",
        "_selected_action": [document.pk for document in documents],
        "post": "yes",
    }
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = root.post(reverse("admin:knowledge_document_changelist"), form)
    assert response.status_code == 302
    assert len(queued) == 2
    assert not Document.objects.exists()
    assert not any(Path(path).exists() for path in files)
    for knowledge_base in (first, second):
        assert index_ids(knowledge_base) == set()
        assert indexing.check_index(knowledge_base).problems == []
