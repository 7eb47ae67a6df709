"""The admin: documents added by upload and managed by actions; conversations read-only."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from knowledge import answering, services
from knowledge.models import Document, Feedback, Message
from tests.factories import add_text, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db

TEXT = "# Expenses\n\nMeal receipts above 25 euros are uploaded within 30 days.\n"


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_adding_a_document_in_the_admin_uploads_and_indexes_it(
    admin_client, eager_celery, django_capture_on_commit_callbacks
):
    knowledge_base = make_knowledge_base()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:knowledge_document_add"),
            {
                "knowledge_base": knowledge_base.pk,
                "file": SimpleUploadedFile("expenses.md", TEXT.encode()),
                "password": "",
            },
        )
    assert response.status_code == 302, response.content.decode()[-2000:]
    (document,) = Document.objects.all()
    assert document.state == "indexed" and document.chunk_count == 1
    assert document.original_name == "expenses.md" and len(document.sha256) == 64


def test_the_admin_refuses_a_file_type_we_do_not_read(admin_client):
    response = admin_client.post(
        reverse("admin:knowledge_document_add"),
        {
            "knowledge_base": make_knowledge_base().pk,
            "file": SimpleUploadedFile("tool.exe", b"MZ"),
        },
    )
    assert response.status_code == 200
    assert "tool.exe: files of type .exe are not accepted" in response.content.decode()
    assert not Document.objects.exists()


def test_the_document_page_shows_state_progress_and_error(admin_client):
    document = add_text(make_knowledge_base(), "notes.txt", "x")
    Document.objects.filter(pk=document.pk).update(
        state="failed", error="The document holds no text to index."
    )
    html = admin_client.get(
        reverse("admin:knowledge_document_change", args=[document.pk])
    ).content.decode()
    assert "The document holds no text to index." in html
    assert reverse("knowledge:document_file", args=[document.pk]) in html


def test_disable_action_takes_documents_out_of_the_index(admin_client):
    knowledge_base = make_knowledge_base()
    document = add_text(knowledge_base, "expenses.md", TEXT)
    services.ingest_document(document.pk)
    response = admin_client.post(
        reverse("admin:knowledge_document_changelist"),
        {"action": "disable", "_selected_action": [document.pk]},
    )
    assert response.status_code == 302
    assert Document.objects.get(pk=document.pk).state == "disabled"
    assert services.search_passages([knowledge_base], "meal receipts") == []


def test_conversations_and_feedback_are_read_only(admin_client):
    member = make_user("member")
    knowledge_base = make_knowledge_base(members=[member])
    services.ingest_document(add_text(knowledge_base, "expenses.md", TEXT).pk)
    answer = answering.answer_question("When are receipts due?", [knowledge_base], user=member)
    answering.record_feedback(Message.objects.get(pk=answer["message"]), member, -1, "Too short")
    page = admin_client.get(
        reverse("admin:knowledge_conversation_change", args=[answer["conversation"]])
    )
    html = page.content.decode()
    assert page.status_code == 200 and "When are receipts due?" in html
    assert 'name="_save"' not in html
    assert admin_client.get(reverse("admin:knowledge_conversation_add")).status_code == 403
    feedback = Feedback.objects.get()
    listing = admin_client.get(reverse("admin:knowledge_feedback_changelist")).content.decode()
    assert "Too short" in listing
    assert (
        admin_client.post(
            reverse("admin:knowledge_feedback_change", args=[feedback.pk]), {"comment": "edited"}
        ).status_code
        == 403
    )
