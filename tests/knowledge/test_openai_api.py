"""The OpenAI-compatible API: /v1/models and /v1/chat/completions in OpenAI's shapes."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from knowledge import components
from knowledge.models import Conversation
from tests.factories import indexed_text, make_knowledge_base
from tests.knowledge.apiclient import (
    body_text,
    sse_json,
    token_client,
)
from tests.openai_server import Reply

# Extractive answers with the weightless hashing embedder (tests/conftest.py).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("extractive_mode")]

TRAVEL = "# Travel\n\nEmployees book economy class for flights shorter than six hours."
LAPTOPS = "# Laptops\n\nEvery engineer receives a laptop with an encrypted disk on day one."


@pytest.fixture
def travel(member):
    knowledge_base = make_knowledge_base("travel", members=[member])
    indexed_text(knowledge_base, "travel.md", TRAVEL)
    return knowledge_base


@pytest.fixture
def it(member):
    knowledge_base = make_knowledge_base("it", members=[member])
    indexed_text(knowledge_base, "laptops.md", LAPTOPS)
    return knowledge_base


@pytest.fixture
def client(member):
    return token_client(member, "Bearer")


def chat(client, *messages, **extra):
    turns = [{"role": role, "content": text} for role, text in messages]
    return client.post("/v1/chat/completions", {"messages": turns, **extra}, format="json")


def test_models_lists_all_and_each_readable_knowledge_base(client, travel, it):
    make_knowledge_base("board")
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [model["id"] for model in body["data"]] == ["knowledge", "kb:it", "kb:travel"]
    assert {model["object"] for model in body["data"]} == {"model"}


def test_a_completion_has_openai_shape_with_citations(client, travel):
    response = chat(client, ("user", "Which class do employees fly?"))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "knowledge"
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert "economy" in choice["message"]["content"]
    assert choice["message"]["citations"][0]["document_title"] == "Travel"


def test_a_kb_model_answers_from_that_knowledge_base_only(client, travel, it):
    body = chat(client, ("user", "Which class do employees fly?"), model="kb:it").json()
    assert body["model"] == "kb:it"
    cited = {c["document_title"] for c in body["choices"][0]["message"]["citations"]}
    assert cited <= {"Laptops"}
    assert "economy" not in body["choices"][0]["message"]["content"]


def test_a_plain_knowledge_base_name_is_a_model_too(client, travel):
    assert chat(client, ("user", "Flights?"), model="travel").status_code == 200


def test_an_unknown_model_is_a_404_in_openai_error_shape(client, travel):
    response = chat(client, ("user", "Flights?"), model="gpt-4o")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["type"] == "invalid_request_error"
    assert "gpt-4o" in error["message"]


def test_a_streamed_completion_is_chunks_then_done(client, travel):
    response = chat(client, ("user", "Which class do employees fly?"), stream=True)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = sse_json(body_text(response))
    assert all(name is None for name, _ in events)  # OpenAI sends bare data lines
    *chunks, done = [data for _, data in events]
    assert done == "[DONE]"
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert "economy" in text
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["citations"][0]["document_title"] == "Travel"


def test_earlier_messages_become_the_conversation_it_continues(client, member, travel):
    response = chat(
        client,
        ("system", "You are helpful."),
        ("user", "Tell me about flights."),
        ("assistant", "Employees fly economy [1]."),
        ("user", "And for long flights?"),
    )
    assert response.status_code == 200
    conversation = Conversation.objects.get(user=member)
    roles = list(conversation.messages.values_list("role", flat=True))
    assert roles == ["user", "assistant", "user", "assistant"]


def test_content_parts_are_read_as_text(client, travel):
    parts = [{"type": "text", "text": "Which class do employees fly?"}]
    response = client.post(
        "/v1/chat/completions", {"messages": [{"role": "user", "content": parts}]}, format="json"
    )
    assert "economy" in response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    "messages",
    [[], [{"role": "assistant", "content": "Hi"}], [{"role": "user", "content": ""}], "hello"],
)
def test_a_request_without_a_user_question_is_a_400(client, travel, messages):
    response = client.post("/v1/chat/completions", {"messages": messages}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_without_a_key_the_answer_is_openai_shaped_401():
    response = APIClient().get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_the_llm_writes_the_answer_when_configured(client, travel, settings, llm_server):
    settings.RAG_LLM_BASE_URL = llm_server.url
    settings.RAG_LLM_MODEL = "test-model"
    components.reset_llm_clients()
    llm_server.script(Reply(text="Economy class, for flights under six hours [1]."))
    body = chat(client, ("user", "Which class do employees fly?")).json()
    message = body["choices"][0]["message"]
    assert message["content"] == "Economy class, for flights under six hours [1]."
    assert [c["n"] for c in message["citations"]] == [1]
    assert "economy class" in str(llm_server.chat_requests()[-1]["messages"]).lower()


def test_the_llm_answer_streams_as_chunks(client, travel, settings, llm_server):
    settings.RAG_LLM_BASE_URL = llm_server.url
    settings.RAG_LLM_MODEL = "test-model"
    components.reset_llm_clients()
    llm_server.script(Reply(text="Economy class [1]."))
    events = sse_json(body_text(chat(client, ("user", "Flights?"), stream=True)))
    chunks = [data for _, data in events[:-1]]
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == "Economy class [1]."
    assert chunks[-1]["citations"][0]["n"] == 1


def test_a_completion_counts_its_tokens_with_the_embedding_tokenizer(client, travel):
    question = "Which class do employees fly?"
    body = chat(client, ("user", question)).json()
    usage = body["usage"]
    count = components.get_embedder().count_tokens
    content = body["choices"][0]["message"]["content"]
    assert usage["completion_tokens"] == count([content])[0] > 0
    # The prompt is what the answer was drawn from: the question and the travel passage
    # (its heading included).
    assert usage["prompt_tokens"] == sum(count([question, TRAVEL]))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_stream_sends_usage_last_when_asked_to_include_it(client, travel):
    options = {"include_usage": True}
    response = chat(client, ("user", "Flights?"), stream=True, stream_options=options)
    events = sse_json(body_text(response))
    *chunks, usage_chunk, done = [data for _, data in events]
    assert done == "[DONE]"
    assert usage_chunk["choices"] == []
    assert all(chunk["usage"] is None for chunk in chunks)
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    tokens = usage_chunk["usage"]
    assert tokens["completion_tokens"] == components.get_embedder().count_tokens([text])[0] > 0
    assert tokens["total_tokens"] == tokens["prompt_tokens"] + tokens["completion_tokens"]
    plain = sse_json(body_text(chat(client, ("user", "Flights?"), stream=True)))
    assert all("usage" not in data for _, data in plain[:-1])


def test_api_conversations_stay_out_of_the_chat_pages_list(client, member, travel):
    chat(client, ("user", "Asked by an OpenAI client?"))
    token_client(member).post("/api/v1/ask/", {"question": "Asked over REST?"}, format="json")
    sources = set(Conversation.objects.filter(user=member).values_list("source", flat=True))
    assert sources == {"openai", "api"}
    browser = Client()
    browser.force_login(member)
    page = browser.get("/chat/").content.decode()
    assert "No conversations yet." in page
    assert "Asked by an OpenAI client" not in page and "Asked over REST" not in page


def test_llm_answers_report_the_model_servers_own_token_counts(
    client, travel, settings, llm_server
):
    settings.RAG_LLM_BASE_URL = llm_server.url
    settings.RAG_LLM_MODEL = "test-model"
    components.reset_llm_clients()
    llm_server.script(Reply(text="Economy class, for flights under six hours [1]."))
    body = chat(client, ("user", "Which class do employees fly?")).json()
    request = llm_server.chat_requests()[-1]
    assert request["stream_options"] == {"include_usage": True}
    prompt = sum(len(str(message["content"]).split()) for message in request["messages"])
    # The fake server counts a token per word: 8 words of answer, not the tokenizer's count.
    assert body["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 8,
        "total_tokens": prompt + 8,
    }
