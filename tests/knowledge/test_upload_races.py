"""Uploads racing each other: the same file sent ten times at once makes one document, the
others answer as a duplicate sent afterwards would, and no stray file is left on disk."""

from __future__ import annotations

import os
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from knowledge import ingestion
from knowledge.models import Document
from tests.factories import add_text, make_knowledge_base, make_user
from tests.knowledge.apiclient import token_client

TEXT = "# Travel\n\nEmployees book economy class for flights shorter than six hours.\n" * 50


def stored_files() -> list[Path]:
    return [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


@pytest.mark.django_db(transaction=True)
def test_ten_parallel_page_uploads_of_one_file_make_one_document_and_no_stray_file(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"
    owner = make_user("olga", is_staff=True)
    knowledge_base = make_knowledge_base("travel", members=[owner])
    url = reverse("knowledge:upload", args=[knowledge_base.pk])
    start = threading.Barrier(10)
    answers: list[dict] = []

    def upload() -> None:
        client = Client(HTTP_ACCEPT="application/json")
        client.force_login(owner)
        start.wait()
        try:
            response = client.post(url, {"file": SimpleUploadedFile("travel.md", TEXT.encode())})
            answers.append({"status": response.status_code, **response.json()})
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [answer["status"] for answer in answers] == [200] * 10, answers
    (document,) = Document.objects.all()
    results = [answer["results"][0] for answer in answers]
    assert all(result["error"] is None for result in results), results
    assert sorted(bool(result.get("duplicate")) for result in results) == [False] + [True] * 9
    assert {result["document"]["id"] for result in results} == {document.pk}
    assert stored_files() == [Path(document.file.path)]


@pytest.mark.django_db(transaction=True)
def test_ten_parallel_api_uploads_of_one_file_answer_201_once_and_200_nine_times(settings):
    """The API wraps the upload in a transaction: on PostgreSQL the losers wait for the
    winner's commit on the unique index, then answer with its document."""
    settings.RAG_EMBEDDING_MODEL = "hashing:64"
    owner = make_user("olga", is_staff=True)
    knowledge_base = make_knowledge_base("travel", members=[owner])
    url = f"/api/v1/knowledge-bases/{knowledge_base.pk}/documents/"
    start = threading.Barrier(10)
    answers: list[tuple[int, int]] = []

    def upload() -> None:
        client = token_client(owner)
        start.wait()
        try:
            response = client.post(url, {"file": SimpleUploadedFile("travel.md", TEXT.encode())})
            answers.append((response.status_code, response.json()["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (document,) = Document.objects.all()
    assert sorted(status for status, _ in answers) == [200] * 9 + [201], answers
    assert {pk for _, pk in answers} == {document.pk}
    assert stored_files() == [Path(document.file.path)]


@pytest.mark.django_db
def test_check_index_reports_upload_files_no_document_names():
    knowledge_base = make_knowledge_base()
    kept = add_text(knowledge_base, "kept.md", "# Kept\n\nStill here.")
    ingestion.ingest_document(kept.pk)
    stray = Path(kept.file.path).with_name("0" * 64 + ".md")
    stray.write_text("left behind by an upload that died")
    call_command("check_index", stdout=StringIO())  # a fresh file may be an upload under way
    an_hour_ago = time.time() - 3600
    os.utime(stray, (an_hour_ago, an_hour_ago))
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("check_index", stdout=out)
    assert raised.value.returncode == 1
    assert "1 upload file(s) belong to no document" in out.getvalue()
    assert stray.name in out.getvalue()
    stray.unlink()
    call_command("check_index", stdout=StringIO())
