"""The admin: documents added by upload and managed by actions; conversations read-only."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from knowledge import answering, conversations, indexing, ingestion, search
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
    assert "tool.exe is a .exe file, which cannot be read; upload .pdf" in response.content.decode()
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
    ingestion.ingest_document(document.pk)
    response = admin_client.post(
        reverse("admin:knowledge_document_changelist"),
        {"action": "disable", "_selected_action": [document.pk]},
    )
    assert response.status_code == 302
    assert Document.objects.get(pk=document.pk).state == "disabled"
    assert search.search_passages([knowledge_base], "meal receipts") == []


def test_conversations_and_feedback_are_read_only(admin_client):
    member = make_user("member")
    knowledge_base = make_knowledge_base(members=[member])
    ingestion.ingest_document(add_text(knowledge_base, "expenses.md", TEXT).pk)
    answer = answering.answer_question("When are receipts due?", [knowledge_base], user=member)
    conversations.record_feedback(Message.objects.get(pk=answer.message), member, -1, "Too short")
    page = admin_client.get(
        reverse("admin:knowledge_conversation_change", args=[answer.conversation])
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


# --- Scope: a staff member sees in the admin only the knowledge bases it manages --------------

SECRET = "# Vault\n\nThe launch code for project nightingale is QUOKKA-7731.\n"


@pytest.fixture
def two_bases():
    """Alice (staff, with every view and change permission) manages garden; vault, which holds
    a secret, is Bob's. Both have an answered conversation and feedback."""
    from django.contrib.auth.models import Permission

    alice = make_user("alice", is_staff=True)
    alice.user_permissions.set(Permission.objects.filter(content_type__app_label="knowledge"))
    bob = make_user("bob", is_staff=True)
    garden = make_knowledge_base("garden", members=[alice])
    vault = make_knowledge_base("vault", members=[bob])
    ingestion.ingest_document(add_text(garden, "garden.md", TEXT).pk)
    secret = ingestion.ingest_document(add_text(vault, "vault.md", SECRET).pk)
    answer = answering.answer_question("What is the launch code?", [vault], user=bob)
    conversations.record_feedback(Message.objects.get(pk=answer.message), bob, 1, "QUOKKA ok")
    own = answering.answer_question("When are receipts due?", [garden], user=alice)
    client = Client()
    client.force_login(alice)
    return client, secret, answer, own, vault


@pytest.mark.parametrize(
    "model", ["knowledgebase", "document", "chunk", "conversation", "message", "feedback"]
)
def test_a_staff_member_lists_only_what_it_manages(two_bases, model):
    client, *_ = two_bases
    response = client.get(reverse(f"admin:knowledge_{model}_changelist"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "QUOKKA" not in html and "vault" not in html and "launch code" not in html


def test_a_staff_member_opens_its_own_objects_but_not_others(two_bases):
    from knowledge.models import Chunk

    client, secret, answer, own, vault = two_bases
    own_chunk = Chunk.objects.exclude(document=secret).get()
    assert (
        client.get(reverse("admin:knowledge_chunk_change", args=[own_chunk.pk])).status_code == 200
    )
    assert (
        client.get(
            reverse("admin:knowledge_conversation_change", args=[own.conversation])
        ).status_code
        == 200
    )
    foreign = [
        ("chunk", secret.chunks.get().pk),
        ("document", secret.pk),
        ("knowledgebase", vault.pk),
        ("conversation", answer.conversation),
        ("message", answer.message),
        ("feedback", Feedback.objects.get().pk),
    ]
    for model, pk in foreign:
        response = client.get(reverse(f"admin:knowledge_{model}_change", args=[pk]), follow=True)
        assert "QUOKKA" not in response.content.decode(), model
        assert response.redirect_chain, model  # "does not exist", back to the index


def test_a_staff_member_uploads_only_to_bases_it_manages(
    two_bases, django_capture_on_commit_callbacks
):
    client, secret, answer, own, vault = two_bases
    form = client.get(reverse("admin:knowledge_document_add")).content.decode()
    assert "garden" in form and "vault" not in form
    response = client.post(
        reverse("admin:knowledge_document_add"),
        {"knowledge_base": vault.pk, "file": SimpleUploadedFile("x.md", b"# X\n\nplanted")},
    )
    assert response.status_code == 200  # the form refuses the choice
    assert not vault.documents.filter(original_name="x.md").exists()


def test_a_superuser_sees_every_base(two_bases, admin_client):
    html = admin_client.get(reverse("admin:knowledge_chunk_changelist")).content.decode()
    assert "vault" in html


def test_a_document_cannot_be_moved_to_another_base_in_the_admin(admin_client):
    """Its chunks and indexes belong to its base: the change form shows the base read-only,
    and a posted base is ignored, so members of neither base are misled."""
    first, second = make_knowledge_base("first"), make_knowledge_base("second")
    document = ingestion.ingest_document(add_text(first, "expenses.md", TEXT).pk)
    url = reverse("admin:knowledge_document_change", args=[document.pk])
    assert 'name="knowledge_base"' not in admin_client.get(url).content.decode()
    response = admin_client.post(
        url, {"knowledge_base": second.pk, "original_name": "expenses.md", "title": "Moved"}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    document.refresh_from_db()
    assert document.knowledge_base == first and document.title == "Moved"
    assert search.search_passages([first], "meal receipts")
    assert search.search_passages([second], "meal receipts") == []
    assert all(report.problems == [] for report in map(indexing.check_index, (first, second)))


def test_a_base_a_staff_member_adds_in_the_admin_is_one_it_manages(two_bases):
    client, *_ = two_bases
    response = client.post(reverse("admin:knowledge_knowledgebase_add"), {"name": "orchard"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    listing = client.get(reverse("admin:knowledge_knowledgebase_changelist")).content.decode()
    assert "orchard" in listing
