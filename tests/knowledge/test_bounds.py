"""Unbounded or malformed input gets a 400 with a reason, never a 500 or unbounded work, and
nothing is stored for a refused request."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from knowledge.models import Conversation, Message
from knowledge.serializers import MAX_CHAT_CHARS, MAX_CHAT_MESSAGES, MAX_QUERY_CHARS
from tests.factories import indexed_text, make_knowledge_base
from tests.knowledge.apiclient import token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("extractive_mode")]

TRAVEL = "# Travel\n\nEmployees book economy class for flights shorter than six hours."


@pytest.fixture
def travel(member):
    knowledge_base = make_knowledge_base("travel", members=[member])
    indexed_text(knowledge_base, "travel.md", TRAVEL)
    return knowledge_base


@pytest.fixture
def client(member):
    return token_client(member, "Bearer")


def chat(client, messages):
    return client.post("/v1/chat/completions", {"messages": messages}, format="json")


def refused(response, words: str) -> None:
    assert response.status_code == 400, response.content[:500]
    assert words in response.json()["error"]["message"]
    assert not Conversation.objects.exists() and not Message.objects.exists()


# --- The OpenAI endpoint keeps the REST API's limits and stores nothing it refuses ------------


def test_a_question_longer_than_the_rest_api_allows_is_refused(client, travel):
    question = "Which class do employees fly? " * (MAX_QUERY_CHARS // 20)
    refused(chat(client, [{"role": "user", "content": question}]), "at most 4000 characters")


def test_a_question_in_content_parts_counts_all_its_parts(client, travel):
    parts = [{"type": "text", "text": "x" * 3000}, {"type": "text", "text": "y" * 3000}]
    refused(chat(client, [{"role": "user", "content": parts}]), "at most 4000 characters")


def test_too_many_history_messages_are_refused(client, travel):
    roles = ["user", "assistant"] * (MAX_CHAT_MESSAGES // 2)
    history = [{"role": role, "content": "Flights?"} for role in roles]
    response = chat(client, [*history, {"role": "user", "content": "And trains?"}])
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_history_larger_than_the_limit_is_refused(client, travel):
    turn = "Employees fly economy. " * 1800  # about 40 KB, as the probe sent
    history = [{"role": "assistant", "content": turn} for _ in range(MAX_CHAT_CHARS // 40_000 + 1)]
    refused(chat(client, [*history, {"role": "user", "content": "Flights?"}]), "characters")


def test_history_within_the_limits_is_answered(client, travel):
    history = [
        {"role": "user", "content": "Flights?"},
        {"role": "assistant", "content": "x" * 8000},
    ]
    response = chat(client, [*history, {"role": "user", "content": "Which class?"}])
    assert response.status_code == 200


def test_a_nul_character_in_a_message_is_refused(client, travel):
    """PostgreSQL cannot store NUL in text: refused before anything is stored, on any database."""
    refused(chat(client, [{"role": "user", "content": "Flights?\x00"}]), "NUL")
    history = [{"role": "assistant", "content": "a\x00b"}, {"role": "user", "content": "Hi?"}]
    refused(chat(client, history), "NUL")


# --- Deeply nested JSON -----------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "url", ["/api/v1/ask/", "/api/v1/search/", "/v1/chat/completions", "/api/v1/knowledge-bases/"]
)
@pytest.mark.parametrize("depth", [100_000, 200])
def test_deeply_nested_json_is_a_400(member, travel, url, depth):
    response = token_client(member).post(url, nested(depth), content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    message = body["error"]["message"] if "error" in body else body["detail"]
    assert "nested" in message


def test_nesting_within_the_limit_is_read(client, travel):
    content = [{"type": "text", "text": "Which class do employees fly?", "meta": [[[[[1]]]]]}]
    assert chat(client, [{"role": "user", "content": content}]).status_code == 200


# --- Ids beyond what the database stores ------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("knowledge_bases", "99999999999999999999"), ("conversation", "99999999999999999999")],
)
def test_the_chat_page_refuses_ids_beyond_the_database_keys(member, travel, field, value):
    browser = Client()
    browser.force_login(member)
    data = {"question": "Flights?", "knowledge_bases": [travel.pk], field: value}
    response = browser.post(reverse("knowledge:answer_stream"), data)
    assert response.status_code == 400
    assert not Message.objects.exists()


@pytest.mark.postgresql  # only PostgreSQL refuses NUL in text
def test_on_postgresql_a_nul_character_is_a_400_not_a_database_error(client, travel):
    refused(chat(client, [{"role": "user", "content": "Flights?\x00"}]), "NUL")
