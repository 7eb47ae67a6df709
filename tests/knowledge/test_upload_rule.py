"""One upload rule: the same bad file gets the same outcome through the upload page, the REST
API, the admin and `manage.py ingest`, and nothing of it is stored."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from knowledge.models import Document
from knowledge.uploads import Refusal
from tests.factories import make_knowledge_base, make_user
from tests.knowledge.apiclient import token_client

pytestmark = pytest.mark.django_db

ONE_MB = 1024 * 1024
BAD_FILES = {
    "wrong type": ("setup.exe", b"MZ\x90\x00binary", Refusal.WRONG_TYPE),
    "no type": ("README", b"Read me.", Refusal.WRONG_TYPE),
    "pdf that is text": ("fake.pdf", b"just some text, not a PDF", Refusal.WRONG_CONTENT),
    "docx that is text": ("notes.docx", b"plain words", Refusal.WRONG_CONTENT),
    "png that is text": ("chart.png", b"GIF89a not a png", Refusal.WRONG_CONTENT),
    "empty": ("empty.md", b"", Refusal.EMPTY),
    "too large": ("big.txt", b"x" * (ONE_MB + 10), Refusal.TOO_LARGE),
}
# What each kind of refusal says, whatever the surface.
SAYS = {
    Refusal.WRONG_TYPE: "cannot be read; upload .pdf",
    Refusal.WRONG_CONTENT: "but its content is not of that type.",
    Refusal.EMPTY: "is empty.",
    Refusal.TOO_LARGE: "is larger than the 1 MB upload limit.",
}
API_STATUS = {
    Refusal.WRONG_TYPE: 415,
    Refusal.WRONG_CONTENT: 415,
    Refusal.EMPTY: 400,
    Refusal.TOO_LARGE: 413,
}


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.RAG_MAX_UPLOAD_MB = 1
    settings.RAG_EMBEDDING_MODEL = "hashing:64"


@pytest.fixture
def staff():
    return make_user("staff", is_staff=True, is_superuser=True)


@pytest.fixture
def knowledge_base(staff):
    return make_knowledge_base("rules", members=[staff])


def through_page(staff, knowledge_base, name: str, content: bytes) -> str:
    client = Client()
    client.force_login(staff)
    response = client.post(
        reverse("knowledge:upload", args=[knowledge_base.pk]),
        {"file": [SimpleUploadedFile(name, content)]},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 400
    return response.json()["results"][0]["error"]


def through_api(staff, knowledge_base, name: str, content: bytes) -> tuple[int, str]:
    response = token_client(staff).post(
        f"/api/v1/knowledge-bases/{knowledge_base.pk}/documents/",
        {"file": SimpleUploadedFile(name, content)},
        format="multipart",
    )
    body = response.json()
    detail = body["detail"] if "detail" in body else body["file"][0]
    return response.status_code, detail


def through_admin(staff, knowledge_base, name: str, content: bytes) -> str:
    client = Client()
    client.force_login(staff)
    response = client.post(
        reverse("admin:knowledge_document_add"),
        {"knowledge_base": knowledge_base.pk, "file": SimpleUploadedFile(name, content)},
    )
    assert response.status_code == 200  # the form again, with its error
    return html.unescape(response.content.decode())


def through_ingest(knowledge_base, folder: Path, name: str, content: bytes) -> dict:
    path = folder / name
    path.write_bytes(content)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 file"):
        call_command("ingest", str(path), "--kb", knowledge_base.name, "--json", stdout=out)
    return json.loads(out.getvalue().splitlines()[0])


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_the_same_bad_upload_gets_the_same_outcome_everywhere(
    case, staff, knowledge_base, tmp_path
):
    name, content, kind = case
    says = SAYS[kind]

    page_error = through_page(staff, knowledge_base, name, content)
    status, api_error = through_api(staff, knowledge_base, name, content)
    admin_page = through_admin(staff, knowledge_base, name, content)
    row = through_ingest(knowledge_base, tmp_path, name, content)

    assert page_error.startswith(name) and says in page_error
    assert status == API_STATUS[kind] and page_error in api_error
    assert page_error in admin_page
    assert row["status"] == "failed" and row["error"] == page_error
    assert not Document.objects.exists()  # nothing stored, nothing queued
