"""Nothing of a knowledge base a caller may not read reaches it, on any API surface.

Two users, each the only member of a knowledge base holding a distinctive secret. Alice asks
everything about Bob's secret; each test checks one surface. Every test first shows that Bob
himself does get the secret through the same surface, so that none can pass by finding nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tests.factories import indexed_text, make_knowledge_base, make_user
from tests.knowledge.apiclient import body_text, token_client

# Extractive answers with the weightless hashing embedder (tests/conftest.py).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("extractive_mode")]

ALICE_TEXT = "# Garden\n\nThe greenhouse door code for project heron is ZANZIBAR-4410."
BOB_TEXT = "# Vault\n\nThe launch code for project nightingale is QUOKKA-7731."
BOB_SECRET, BOB_KB = "QUOKKA", "bobs-vault"
QUESTION = "What is the launch code for project nightingale?"
MISSING = 987_654


@dataclass
class World:
    alice: object
    bob: object
    alpha: object
    vault: object
    bob_document: object

    def as_alice(self):
        return token_client(self.alice)

    def as_bob(self):
        return token_client(self.bob)


@pytest.fixture
def world() -> World:
    alice, bob = make_user("alice"), make_user("bob", is_staff=True)
    alpha = make_knowledge_base("alpha", members=[alice])
    vault = make_knowledge_base(BOB_KB, members=[bob])
    indexed_text(alpha, "garden.md", ALICE_TEXT)
    bob_document = indexed_text(vault, "vault.md", BOB_TEXT)
    return World(alice, bob, alpha, vault, bob_document)


def assert_clean(response) -> None:
    text = body_text(response)
    assert BOB_SECRET not in text
    assert BOB_KB not in text


def assert_like_missing(foreign, missing, foreign_id: object, missing_id: object) -> None:
    """The foreign id answers exactly as a missing one, but for the id the caller sent."""
    assert foreign.status_code == missing.status_code == 404
    assert body_text(foreign).replace(str(foreign_id), "ID") == body_text(missing).replace(
        str(missing_id), "ID"
    )
    assert_clean(foreign)


def test_knowledge_base_list(world):
    assert BOB_KB in body_text(world.as_bob().get("/api/v1/knowledge-bases/"))
    response = world.as_alice().get("/api/v1/knowledge-bases/")
    assert response.json()["count"] == 1
    assert_clean(response)


def test_document_list(world):
    url = "/api/v1/knowledge-bases/{}/documents/"
    assert world.as_bob().get(url.format(world.vault.pk)).status_code == 200
    client = world.as_alice()
    foreign, missing = client.get(url.format(world.vault.pk)), client.get(url.format(MISSING))
    assert_like_missing(foreign, missing, world.vault.pk, MISSING)


def test_upload(world):
    url = "/api/v1/knowledge-bases/{}/documents/"
    client = world.as_alice()
    foreign = client.post(url.format(world.vault.pk), {}, format="multipart")
    missing = client.post(url.format(MISSING), {}, format="multipart")
    assert_like_missing(foreign, missing, world.vault.pk, MISSING)


@pytest.mark.parametrize("method", ["get", "delete"])
def test_document_detail(world, method):
    url = "/api/v1/documents/{}/"
    assert world.as_bob().get(url.format(world.bob_document.pk)).status_code == 200
    client = world.as_alice()
    foreign = getattr(client, method)(url.format(world.bob_document.pk))
    missing = getattr(client, method)(url.format(MISSING))
    assert_like_missing(foreign, missing, world.bob_document.pk, MISSING)
    assert world.as_bob().get(url.format(world.bob_document.pk)).status_code == 200


def test_file_download(world):
    url = "/api/v1/documents/{}/file"
    assert BOB_SECRET in body_text(world.as_bob().get(url.format(world.bob_document.pk)))
    client = world.as_alice()
    foreign = client.get(url.format(world.bob_document.pk))
    missing = client.get(url.format(MISSING))
    assert_like_missing(foreign, missing, world.bob_document.pk, MISSING)


def test_search_over_everything_readable(world):
    body = {"query": QUESTION}
    assert BOB_SECRET in body_text(world.as_bob().post("/api/v1/search/", body, format="json"))
    response = world.as_alice().post("/api/v1/search/", body, format="json")
    assert response.status_code == 200
    assert {r["document_id"] for r in response.json()["results"]} <= {
        d.pk for d in world.alpha.documents.all()
    }
    assert_clean(response)


@pytest.mark.parametrize("endpoint", ["/api/v1/search/", "/api/v1/ask/"])
def test_naming_the_foreign_knowledge_base(world, endpoint):
    field = "query" if "search" in endpoint else "question"
    client = world.as_alice()
    foreign = client.post(
        endpoint, {field: QUESTION, "knowledge_bases": [world.vault.pk]}, format="json"
    )
    missing = client.post(endpoint, {field: QUESTION, "knowledge_bases": [MISSING]}, format="json")
    assert_like_missing(foreign, missing, world.vault.pk, MISSING)


def test_mixing_a_foreign_knowledge_base_with_an_own_one_gets_nothing(world):
    body = {"query": QUESTION, "knowledge_bases": [world.alpha.pk, world.vault.pk]}
    response = world.as_alice().post("/api/v1/search/", body, format="json")
    assert response.status_code == 404
    assert_clean(response)


def test_ask(world):
    body = {"question": QUESTION}
    assert BOB_SECRET in body_text(world.as_bob().post("/api/v1/ask/", body, format="json"))
    response = world.as_alice().post("/api/v1/ask/", body, format="json")
    assert response.status_code == 200
    answer = response.json()
    assert {c["document_id"] for c in answer["citations"] + answer["passages"]} <= {
        d.pk for d in world.alpha.documents.all()
    }
    assert_clean(response)


def test_ask_stream(world):
    body = {"question": QUESTION, "stream": True}
    assert BOB_SECRET in body_text(world.as_bob().post("/api/v1/ask/", body, format="json"))
    response = world.as_alice().post("/api/v1/ask/", body, format="json")
    assert response.status_code == 200
    assert_clean(response)


def test_someone_elses_conversation(world):
    bob_answer = world.as_bob().post("/api/v1/ask/", {"question": QUESTION}, format="json")
    conversation = bob_answer.json()["conversation"]
    client = world.as_alice()
    body = {"question": "And the backup code?"}
    foreign = client.post("/api/v1/ask/", {**body, "conversation": conversation}, format="json")
    missing = client.post("/api/v1/ask/", {**body, "conversation": MISSING}, format="json")
    assert_like_missing(foreign, missing, conversation, MISSING)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_over_everything_readable(world, stream):
    body = {"messages": [{"role": "user", "content": QUESTION}], "stream": stream}
    own = world.as_bob().post("/v1/chat/completions", body, format="json")
    assert BOB_SECRET in body_text(own)
    response = world.as_alice().post("/v1/chat/completions", body, format="json")
    assert response.status_code == 200
    assert_clean(response)


def test_chat_completions_naming_the_foreign_knowledge_base(world):
    messages = [{"role": "user", "content": QUESTION}]
    client = world.as_alice()
    foreign = client.post(
        "/v1/chat/completions", {"messages": messages, "model": f"kb:{BOB_KB}"}, format="json"
    )
    missing = client.post(
        "/v1/chat/completions", {"messages": messages, "model": "kb:nothing"}, format="json"
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"]
    # The message repeats the model name the caller sent, and nothing else.
    assert foreign.json()["error"]["message"].replace(BOB_KB, "X") == missing.json()["error"][
        "message"
    ].replace("nothing", "X")


def test_models(world):
    assert f"kb:{BOB_KB}" in body_text(world.as_bob().get("/v1/models"))
    response = world.as_alice().get("/v1/models")
    assert [model["id"] for model in response.json()["data"]] == ["knowledge", "kb:alpha"]
    assert_clean(response)


def test_an_unauthenticated_caller_sees_nothing(world):
    client = APIClient()
    for response in (
        client.get("/api/v1/knowledge-bases/"),
        client.get(f"/api/v1/documents/{world.bob_document.pk}/"),
        client.get(f"/api/v1/documents/{world.bob_document.pk}/file"),
        client.post("/api/v1/search/", {"query": QUESTION}, format="json"),
        client.get("/v1/models"),
    ):
        assert response.status_code == 401
        assert_clean(response)
