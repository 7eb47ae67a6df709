"""Outages of the cache and the broker: the site keeps answering, and an upload that could not be
handed to a worker is sent again by the workers' sweep instead of waiting forever."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from knowledge import ingestion
from knowledge.models import Document
from tests.factories import add_text, make_knowledge_base, make_user
from tests.knowledge.apiclient import token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("extractive_mode")]

TEXT = "# Travel\n\nEmployees book economy class for flights shorter than six hours."
NOBODY = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture
def cache_down(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": NOBODY}
    }
    settings.RAG_API_THROTTLE_USER = settings.RAG_API_THROTTLE_ANON = "5/minute"
    settings.RAG_API_THROTTLE_ASK = "5/minute"
    return settings


def test_with_the_cache_down_the_api_answers_and_says_throttling_is_off(cache_down, caplog):
    owner = make_user("olga", is_staff=True)
    knowledge_base = make_knowledge_base("travel", members=[owner])
    client = token_client(owner)
    with caplog.at_level(logging.WARNING):
        assert client.get("/api/v1/knowledge-bases/").status_code == 200
        search = {"query": "flights", "knowledge_bases": [knowledge_base.pk]}
        assert client.post("/api/v1/search/", search, format="json").status_code == 200
        wrong = token_client(owner)
        wrong.credentials(HTTP_AUTHORIZATION="Token wrong")
        assert wrong.get("/api/v1/knowledge-bases/").status_code == 401
    assert "throttle" in caplog.text.lower() and "not applied" in caplog.text


def test_with_the_cache_down_people_can_still_sign_in(cache_down):
    make_user("olga")
    response = Client().post("/accounts/login/", {"username": "olga", "password": "pw-olga"})
    assert response.status_code == 302


@pytest.fixture
def broker_down(settings):
    """The embedded broker's queue folder gone: sending a message fails, as with Redis down.
    (Tests using it are marked embedded_broker: the run with a real Redis leaves them out.)"""
    queue = settings.BROKER_DIR / "queue"
    aside = queue.with_name(f"queue-aside-{timezone.now().timestamp()}")
    queue.rename(aside)
    yield queue
    if queue.exists():
        queue.rmdir()
    aside.rename(queue)


@pytest.mark.embedded_broker
def test_an_upload_that_cannot_be_queued_stays_queued_and_says_so(
    broker_down, caplog, django_capture_on_commit_callbacks
):
    owner = make_user("olga", is_staff=True)
    knowledge_base = make_knowledge_base("travel", members=[owner])
    upload = SimpleUploadedFile("travel.md", TEXT.encode())
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        response = token_client(owner).post(
            f"/api/v1/knowledge-bases/{knowledge_base.pk}/documents/", {"file": upload}
        )
    assert response.status_code == 201
    document = Document.objects.get()
    assert document.state == Document.State.QUEUED
    assert f"Cannot queue document {document.pk}" in caplog.text


def test_the_sweep_sends_documents_left_queued_again(
    settings, eager_celery, django_capture_on_commit_callbacks
):
    """A document queued long ago whose message was lost is sent again (and, with the eager
    app here, ingested); a document queued a moment ago is left to its message."""
    settings.RAG_REQUEUE_AFTER_SECONDS = 60
    knowledge_base = make_knowledge_base()
    lost = add_text(knowledge_base, "travel.md", TEXT)
    fresh = add_text(knowledge_base, "other.md", "# Other\n\nSomething else entirely.")
    Document.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert ingestion.recover_stalled_documents(include_queued=False) == [lost.pk]
    assert Document.objects.get(pk=lost.pk).state == Document.State.INDEXED
    assert Document.objects.get(pk=fresh.pk).state == Document.State.QUEUED
    assert ingestion.recover_stalled_documents(include_queued=False) == []


def test_the_sweep_sends_a_document_once_per_period(settings):
    settings.RAG_REQUEUE_AFTER_SECONDS = 60
    document = add_text(make_knowledge_base(), "travel.md", TEXT)
    Document.objects.filter(pk=document.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert ingestion.recover_stalled_documents(include_queued=False) == [document.pk]
    assert ingestion.recover_stalled_documents(include_queued=False) == []
