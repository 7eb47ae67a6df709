"""The REST API under /api/v1/: authentication, knowledge bases, documents, uploads, search and
answers, errors, throttling and the create_api_token command."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from knowledge.models import Document, KnowledgeBase
from tests.conftest import PDFS
from tests.factories import add_text, indexed_text, make_knowledge_base
from tests.knowledge.apiclient import (
    body_text,
    sse_json,
    token_client,
)

# Extractive answers with the weightless hashing embedder (tests/conftest.py).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("extractive_mode")]

HANDBOOK = (
    "# Travel policy\n\nEmployees book economy class for flights shorter than six hours. "
    "Receipts for hotels go to the finance team within thirty days.\n\n"
    "# Laptops\n\nEvery engineer receives a laptop with an encrypted disk on the first day."
)


@pytest.fixture
def policy(handbook):
    return indexed_text(handbook, "policy.md", HANDBOOK)


def upload(client, knowledge_base_id, name, content: bytes, **extra):
    file = SimpleUploadedFile(name, content)
    url = f"/api/v1/knowledge-bases/{knowledge_base_id}/documents/"
    return client.post(url, {"file": file, **extra}, format="multipart")


# --- Authentication -----------------------------------------------------------------------------


def test_without_a_token_the_api_answers_401_with_detail_and_code():
    response = APIClient().get("/api/v1/knowledge-bases/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_answers_401(member):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    response = client.get("/api/v1/knowledge-bases/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}


def test_the_bearer_keyword_takes_the_same_token(member, handbook):
    response = token_client(member, "Bearer").get("/api/v1/knowledge-bases/")
    assert response.status_code == 200
    assert [kb["name"] for kb in response.json()["results"]] == ["handbook"]


def test_a_logged_in_browser_session_may_read_but_must_send_the_csrf_token(member, handbook):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(member)
    assert client.get("/api/v1/knowledge-bases/").status_code == 200
    response = client.post("/api/v1/search/", {"query": "laptops"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_create_api_token_prints_a_working_token(member, handbook, capsys):
    call_command("create_api_token", "mario")
    key = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/knowledge-bases/").status_code == 200


def test_create_api_token_reset_revokes_the_old_token(member, capsys):
    call_command("create_api_token", "mario")
    old = capsys.readouterr().out.strip()
    call_command("create_api_token", "mario", "--reset")
    new = capsys.readouterr().out.strip()
    assert new != old
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.get("/api/v1/knowledge-bases/").status_code == 401


def test_create_api_token_for_an_unknown_user_says_what_to_do():
    with pytest.raises(CommandError, match="createsuperuser"):
        call_command("create_api_token", "nobody")


# --- Knowledge bases ----------------------------------------------------------------------------


def test_the_list_holds_only_readable_knowledge_bases_with_document_counts(member, policy):
    make_knowledge_base("board-minutes")
    response = token_client(member).get("/api/v1/knowledge-bases/")
    assert response.json()["count"] == 1
    (knowledge_base,) = response.json()["results"]
    assert knowledge_base["name"] == "handbook"
    assert knowledge_base["document_count"] == 1


def test_membership_through_a_group_too_counts_each_document_once(member, policy):
    group = Group.objects.create(name="staff-engineers")
    group.user_set.add(member)
    policy.knowledge_base.member_groups.add(group)
    response = token_client(member).get("/api/v1/knowledge-bases/")
    assert [kb["document_count"] for kb in response.json()["results"]] == [1]


def test_a_group_member_reads_the_knowledge_base(outsider, policy):
    group = Group.objects.create(name="readers")
    group.user_set.add(outsider)
    policy.knowledge_base.member_groups.add(group)
    response = token_client(outsider).get(f"/api/v1/documents/{policy.pk}/")
    assert response.status_code == 200


def test_lists_are_paginated(member):
    for number in range(3):
        make_knowledge_base(f"kb-{number}", members=[member])
    page = token_client(member).get("/api/v1/knowledge-bases/?page_size=2&page=2").json()
    assert page["count"] == 3
    assert [kb["name"] for kb in page["results"]] == ["kb-2"]
    assert page["previous"] is not None and page["next"] is None


def test_staff_create_knowledge_bases_and_become_members(owner):
    client = token_client(owner)
    response = client.post("/api/v1/knowledge-bases/", {"name": "legal"}, format="json")
    assert response.status_code == 201
    assert KnowledgeBase.objects.get(name="legal").members.filter(pk=owner.pk).exists()
    assert response.json()["name"] == "legal"


def test_plain_users_may_not_create_knowledge_bases(member):
    response = token_client(member).post("/api/v1/knowledge-bases/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert not KnowledgeBase.objects.filter(name="x").exists()


def test_a_knowledge_base_without_a_name_is_refused_field_by_field(owner):
    response = token_client(owner).post("/api/v1/knowledge-bases/", {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["detail"] == "Invalid request: name: This field is required."
    assert "name" in body["errors"]


def test_malformed_json_is_a_400(owner):
    response = token_client(owner).post(
        "/api/v1/knowledge-bases/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


# --- Documents and uploads ----------------------------------------------------------------------


def test_an_upload_is_queued_then_ingested(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(token_client(owner), handbook.pk, "policy.md", HANDBOOK.encode())
    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "queued"
    assert response["Location"] == f"/api/v1/documents/{created['id']}/"
    document = token_client(owner).get(f"/api/v1/documents/{created['id']}/").json()
    assert document["status"] == "indexed"
    assert document["progress"] == 100
    assert document["chunk_count"] >= 1
    assert document["error"] == ""


def test_the_same_content_again_answers_with_the_existing_document(owner, policy):
    response = upload(token_client(owner), policy.knowledge_base_id, "copy.md", HANDBOOK.encode())
    assert response.status_code == 200
    assert response.json()["id"] == policy.pk
    assert Document.objects.count() == 1


def test_a_real_pdf_is_ingested_with_its_page_count(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    content = (PDFS / "multicolumn.pdf").read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(token_client(owner), handbook.pk, "multicolumn.pdf", content).json()
    document = token_client(owner).get(f"/api/v1/documents/{created['id']}/").json()
    assert document["status"] == "indexed"
    assert document["page_count"] == 3
    assert document["file_type"] == "pdf"


def test_a_truncated_pdf_is_accepted_and_fails_with_a_readable_error(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    content = (PDFS / "issue-848-truncated-at-50pct.pdf").read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(token_client(owner), handbook.pk, "report.pdf", content)
    assert response.status_code == 201
    document = token_client(owner).get(f"/api/v1/documents/{response.json()['id']}/").json()
    assert document["status"] == "failed"
    assert document["error"]
    assert "Traceback" not in document["error"]


def test_an_encrypted_pdf_takes_its_password(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    content = (PDFS / "r4-aes-user-password.pdf").read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            token_client(owner), handbook.pk, "locked.pdf", content, password="asdfzxcv"
        )
    assert response.status_code == 201
    assert "password" not in response.json()
    document = Document.objects.get(pk=response.json()["id"])
    assert document.state == Document.State.INDEXED
    assert document.password == ""  # forgotten once ingested


def test_a_file_over_the_limit_answers_413_before_it_is_stored(owner, handbook, settings):
    settings.RAG_MAX_UPLOAD_MB = 1
    response = upload(token_client(owner), handbook.pk, "big.txt", b"word " * 300_000)
    assert response.status_code == 413
    assert response.json() == {
        "detail": "The file is larger than the 1 MB upload limit.",
        "code": "too_large",
    }
    assert Document.objects.count() == 0


def test_a_file_just_over_the_limit_answers_413_too(owner, handbook, settings):
    settings.RAG_MAX_UPLOAD_MB = 1
    response = upload(token_client(owner), handbook.pk, "big.txt", b"x" * (1024 * 1024 + 10))
    assert response.status_code == 413


def test_an_unsupported_file_type_answers_415(owner, handbook):
    response = upload(token_client(owner), handbook.pk, "setup.exe", b"MZ\x90\x00binary")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_type"
    assert response.json()["detail"].startswith("setup.exe is a .exe file, which cannot be read")
    assert "upload .pdf .docx" in response.json()["detail"]


def test_a_pdf_that_is_not_a_pdf_answers_415(owner, handbook):
    response = upload(token_client(owner), handbook.pk, "fake.pdf", b"just some text")
    assert response.status_code == 415
    assert "fake.pdf" in response.json()["detail"]


def test_an_empty_file_answers_400(owner, handbook):
    response = upload(token_client(owner), handbook.pk, "empty.pdf", b"")
    assert response.status_code == 400
    assert response.json()["code"] == "upload_rejected"
    assert "empty" in response.json()["detail"]


def test_an_upload_without_a_file_answers_400(owner, handbook):
    url = f"/api/v1/knowledge-bases/{handbook.pk}/documents/"
    response = token_client(owner).post(url, {"password": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"]["file"]


def test_plain_members_read_documents_but_may_not_upload(member, policy):
    client = token_client(member)
    listed = client.get(f"/api/v1/knowledge-bases/{policy.knowledge_base_id}/documents/").json()
    assert [d["id"] for d in listed["results"]] == [policy.pk]
    response = upload(client, policy.knowledge_base_id, "new.md", b"# New\n\nText.")
    assert response.status_code == 403


def test_staff_delete_documents(owner, policy):
    client = token_client(owner)
    assert client.delete(f"/api/v1/documents/{policy.pk}/").status_code == 204
    assert client.get(f"/api/v1/documents/{policy.pk}/").status_code == 404
    assert not Document.objects.filter(pk=policy.pk).exists()


def test_plain_members_may_not_delete_documents(member, policy):
    response = token_client(member).delete(f"/api/v1/documents/{policy.pk}/")
    assert response.status_code == 403
    assert Document.objects.filter(pk=policy.pk).exists()


def test_a_document_file_downloads_as_an_attachment(member, policy):
    response = token_client(member).get(f"/api/v1/documents/{policy.pk}/file", HTTP_ACCEPT="*/*")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="policy.md"'
    assert b"".join(response.streaming_content).decode() == HANDBOOK


def test_a_document_file_downloads_whatever_the_client_accepts(member, policy):
    url = f"/api/v1/documents/{policy.pk}/file"
    response = token_client(member).get(url, HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200


# --- Search and answers -------------------------------------------------------------------------


def test_search_returns_ranked_passages_with_document_and_page(member, policy):
    response = token_client(member).post(
        "/api/v1/search/",
        {"query": "laptop encrypted disk", "knowledge_bases": [policy.knowledge_base_id]},
        format="json",
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["rank"] == 1
    assert results[0]["document_id"] == policy.pk
    assert "laptop" in results[0]["text"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_search_without_knowledge_bases_searches_every_readable_one(member, policy):
    body = {"query": "hotel receipts"}
    response = token_client(member).post("/api/v1/search/", body, format="json")
    assert response.status_code == 200
    assert response.json()["results"][0]["document_title"]


def test_search_keeps_to_top_k(member, policy):
    add_text(policy.knowledge_base, "more.md", "# Hotels\n\nHotel receipts. " * 50)
    body = {"query": "hotel", "top_k": 1}
    response = token_client(member).post("/api/v1/search/", body, format="json")
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"query": "   "},
        {"query": "x", "top_k": 0},
        {"query": "x", "top_k": 1000},
        {"query": "x", "knowledge_bases": ["one"]},
        {"query": "x", "knowledge_bases": 5},
        {"query": "x" * 5000},
    ],
)
def test_search_refuses_bad_payloads_with_400(member, payload):
    response = token_client(member).post("/api/v1/search/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_ask_answers_with_citations(member, policy):
    response = token_client(member).post(
        "/api/v1/ask/", {"question": "Which class do employees fly?"}, format="json"
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["mode"] == "extractive"
    assert answer["answer"]
    assert answer["citations"][0]["document_id"] == policy.pk
    assert set(answer["citations"][0]) >= {"n", "document_title", "page", "chunk_id", "text"}
    assert isinstance(answer["conversation"], int)


def test_ask_continues_one_of_your_conversations(member, policy):
    client = token_client(member)
    first = client.post("/api/v1/ask/", {"question": "Flights?"}, format="json").json()
    body = {"question": "And hotels?", "conversation": first["conversation"]}
    second = client.post("/api/v1/ask/", body, format="json")
    assert second.status_code == 200
    assert second.json()["conversation"] == first["conversation"]


def test_ask_refuses_someone_elses_conversation_as_missing(member, owner, policy):
    first = token_client(owner).post("/api/v1/ask/", {"question": "Flights?"}, format="json")
    body = {"question": "And hotels?", "conversation": first.json()["conversation"]}
    theirs = token_client(member).post("/api/v1/ask/", body, format="json")
    missing = token_client(member).post(
        "/api/v1/ask/", {**body, "conversation": 999_999}, format="json"
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()


def test_ask_streams_sources_deltas_then_done(member, policy):
    response = token_client(member).post(
        "/api/v1/ask/", {"question": "Which class do employees fly?", "stream": True}, format="json"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = sse_json(body_text(response))
    kinds = [name for name, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert "delta" in kinds
    deltas = "".join(data["text"] for name, data in events if name == "delta")
    assert deltas.strip() == events[-1][1]["answer"].strip()


def test_an_ask_error_before_streaming_is_plain_json(member):
    body = {"question": "x", "stream": True, "knowledge_bases": [999_999]}
    response = token_client(member).post("/api/v1/ask/", body, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_answers_are_throttled_per_user(member, policy, settings):
    settings.RAG_API_THROTTLE_ASK = "1/minute"
    client = token_client(member)
    assert client.post("/api/v1/ask/", {"question": "Flights?"}, format="json").status_code == 200
    response = client.post("/api/v1/ask/", {"question": "Flights?"}, format="json")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_requests_are_throttled_per_user(member, settings):
    settings.RAG_API_THROTTLE_USER = "2/minute"
    client = token_client(member)
    statuses = [client.get("/api/v1/knowledge-bases/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_an_unknown_api_path_answers_json_404(member):
    response = token_client(member).get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["code"] == "no_endpoint"


def test_uploads_in_json_are_refused_with_415(owner, handbook):
    url = f"/api/v1/knowledge-bases/{handbook.pk}/documents/"
    response = token_client(owner).post(url, {"file": "abc"}, format="json")
    assert response.status_code == 415


def test_a_streamed_upload_body_is_read_only_once(owner, handbook):
    # The upload goes through uploads.add_document from the start of the file.
    content = b"# Notes\n\n" + b"Line of notes.\n" * 2000
    response = upload(token_client(owner), handbook.pk, "notes.md", content)
    document = Document.objects.get(pk=response.json()["id"])
    assert document.size == len(content)
    with document.file.open("rb") as handle:
        assert handle.read() == content


@pytest.mark.parametrize("url", ["/api/v1/documents/{}/", "/api/v1/knowledge-bases/{}/documents/"])
def test_an_id_beyond_the_database_keys_is_a_404(member, url):
    response = token_client(member).get(url.format(2**63))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_ids_beyond_the_database_keys_in_a_body_are_a_400(member):
    body = {"query": "x", "knowledge_bases": [2**63]}
    response = token_client(member).post("/api/v1/search/", body, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/ask/", {"question": 42}, "question"),
        ("/api/v1/ask/", {"question": True}, "question"),
        ("/api/v1/ask/", {"question": ["Flights?"]}, "question"),
        ("/api/v1/search/", {"query": 42}, "query"),
    ],
)
def test_a_question_that_is_not_a_string_is_refused_naming_the_field(
    member, policy, url, body, field
):
    response = token_client(member).post(url, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {field: ["Must be a string."]}
    assert response.json()["detail"].startswith(f"Invalid request: {field}:")
    assert not member.conversations.exists()  # nothing was asked, nothing stored


@pytest.mark.parametrize("url", ["/api/v1/ask/", "/api/v1/search/"])
def test_an_empty_list_of_knowledge_bases_is_refused_not_read_as_all(member, policy, url):
    body = {"question": "Flights?", "query": "Flights?", "knowledge_bases": []}
    response = token_client(member).post(url, body, format="json")
    assert response.status_code == 400
    assert "knowledge_bases" in response.json()["errors"]
    assert "leave the field out" in response.json()["detail"]
    del body["knowledge_bases"]
    left_out = token_client(member).post(url, body, format="json")
    assert left_out.status_code == 200
