"""A user whose access to a knowledge base is revoked no longer sees, in their old conversations,
the answers that quote its documents (the safer policy; docs/operations.md), nor does a new
question in such a conversation carry those answers to the language model."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from knowledge import answering, components, documents, ingestion
from knowledge.models import Conversation, KnowledgeBase
from tests.factories import add_text, make_knowledge_base, make_user
from tests.openai_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("extractive_mode")]

VAULT = "# Vault\n\nThe launch code for project nightingale is QUOKKA-7731."
GARDEN = "# Garden\n\nThe greenhouse door code for project heron is ZANZIBAR-4410."


@pytest.fixture
def world():
    bob = make_user("bob")
    vault = make_knowledge_base("vault", members=[bob])
    garden = make_knowledge_base("garden", members=[bob])
    ingestion.ingest_document(add_text(vault, "vault.md", VAULT).pk)
    ingestion.ingest_document(add_text(garden, "garden.md", GARDEN).pk)
    secret = answering.answer_question(
        "What is the launch code for nightingale?", [vault], user=bob
    )
    kept = answering.answer_question("What is the greenhouse door code?", [garden], user=bob)
    client = Client()
    client.force_login(bob)
    return bob, vault, secret, kept, client


def page(client, conversation: int) -> str:
    response = client.get(reverse("knowledge:conversation", args=[conversation]))
    assert response.status_code == 200
    return response.content.decode()


def test_answers_quoting_a_revoked_base_are_hidden(world):
    bob, vault, secret, kept, client = world
    assert "QUOKKA" in page(client, secret.conversation)  # before: the answer is there
    vault.members.remove(bob)
    html = page(client, secret.conversation)
    assert "QUOKKA" not in html
    assert "What is the launch code for nightingale?" in html  # the user's own question stays
    assert "sources you can no longer read" in html
    assert "ZANZIBAR" in page(client, kept.conversation)  # other bases are untouched


def test_answers_citing_a_deleted_document_of_a_revoked_base_are_hidden(world):
    bob, vault, secret, kept, client = world
    vault.members.remove(bob)
    documents.delete_document(vault.documents.get())
    assert "QUOKKA" not in page(client, secret.conversation)


def test_a_deleted_document_alone_does_not_hide_an_answer(world):
    bob, vault, secret, kept, client = world
    documents.delete_document(vault.documents.get())
    assert "QUOKKA" in page(client, secret.conversation)


def test_a_new_question_does_not_carry_hidden_answers_to_the_model(world, settings, llm_server):
    bob, vault, secret, kept, client = world
    settings.RAG_LLM_BASE_URL = llm_server.url
    components.reset_llm_clients()
    conversation = Conversation.objects.get(pk=secret.conversation)
    garden = KnowledgeBase.objects.get(name="garden")

    def follow_up() -> str:
        llm_server.script(Reply(text="The door code is ZANZIBAR-4410 [1]."))
        answering.answer_question(
            "And the door code?", [garden], user=bob, conversation=conversation
        )
        return str(llm_server.chat_requests()[-1]["messages"])

    assert "QUOKKA" in follow_up()  # while bob reads the vault, its answer is history
    vault.members.remove(bob)
    assert "QUOKKA" not in follow_up()
