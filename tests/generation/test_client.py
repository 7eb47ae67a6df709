"""VllmClient against a real HTTP server speaking the OpenAI protocol (tests/openai_server.py)."""

from __future__ import annotations

import time

import pytest

from generation.client import CircuitBreaker, VllmClient
from generation.errors import GenerationRequestError, GenerationUnavailableError
from tests.openai_server import DEFAULT_MODEL, Reply, free_port

MESSAGES = [{"role": "user", "content": "What is the refund window?"}]


def make_client(url: str, **options) -> VllmClient:
    defaults = {"connect_timeout": 1.0, "read_timeout": 2.0, "backoff": 0.01, "max_backoff": 1.0}
    return VllmClient(url, DEFAULT_MODEL, **(defaults | options))


def test_streams_the_reply_piece_by_piece(llm_server):
    llm_server.script(Reply(text="Refunds are accepted within 30 days [1]."))
    pieces = list(make_client(llm_server.url).stream_chat(MESSAGES))
    assert len(pieces) > 3
    assert "".join(pieces) == "Refunds are accepted within 30 days [1]."


def test_sends_model_messages_and_stream_flag(llm_server):
    client = make_client(llm_server.url, api_key="secret-key", max_tokens=77)
    list(client.stream_chat(MESSAGES))
    request = llm_server.requests[-1]
    assert request["body"]["model"] == DEFAULT_MODEL
    assert request["body"]["messages"] == MESSAGES
    assert request["body"]["stream"] is True
    assert request["body"]["max_tokens"] == 77
    assert request["headers"]["Authorization"] == "Bearer secret-key"


def test_whole_reply_without_streaming(llm_server):
    llm_server.script(Reply(text="A whole answer [2]."))
    assert make_client(llm_server.url).chat(MESSAGES) == "A whole answer [2]."
    assert llm_server.chat_requests()[-1]["stream"] is False


def test_a_lora_adapter_is_named_as_the_model(llm_server):
    llm_server.models.append("hr-adapter")
    reply = "".join(make_client(llm_server.url).stream_chat(MESSAGES, model="hr-adapter"))
    assert reply
    assert llm_server.chat_requests()[-1]["model"] == "hr-adapter"


def test_lists_the_served_models(llm_server):
    llm_server.models.append("hr-adapter")
    assert make_client(llm_server.url).list_models() == [DEFAULT_MODEL, "hr-adapter"]


def test_base_url_without_v1_is_accepted(llm_server):
    root = llm_server.url.removesuffix("/v1")
    assert make_client(root).list_models() == [DEFAULT_MODEL]


def test_retries_after_429_honouring_retry_after(llm_server):
    llm_server.script(
        Reply(status=429, headers={"Retry-After": "0.3"}, error_message="busy"),
        Reply(text="Second time lucky [1]."),
    )
    started = time.monotonic()
    reply = "".join(make_client(llm_server.url).stream_chat(MESSAGES))
    assert reply == "Second time lucky [1]."
    assert time.monotonic() - started >= 0.3
    assert len(llm_server.chat_requests()) == 2


def test_server_errors_exhaust_the_retries(llm_server):
    llm_server.script(*[Reply(status=500, error_message="engine crashed")] * 3)
    client = make_client(llm_server.url, max_retries=2)
    with pytest.raises(GenerationUnavailableError, match=r"HTTP 500.*engine crashed"):
        list(client.stream_chat(MESSAGES))
    assert len(llm_server.chat_requests()) == 3


def test_unknown_model_is_refused_without_retry(llm_server):
    client = make_client(llm_server.url, max_retries=3)
    with pytest.raises(GenerationRequestError, match="does not exist"):
        list(client.stream_chat(MESSAGES, model="no-such-adapter"))
    assert len(llm_server.chat_requests()) == 1


def test_slow_server_hits_the_read_timeout(llm_server):
    llm_server.script(Reply(delay=5))
    client = make_client(llm_server.url, read_timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(GenerationUnavailableError, match="did not answer in time"):
        list(client.stream_chat(MESSAGES))
    assert time.monotonic() - started < 3


def test_stream_that_stalls_mid_answer_times_out(llm_server):
    llm_server.script(Reply(text="one two three four five", stall_after=3))
    client = make_client(llm_server.url, read_timeout=0.5)
    received = []
    with pytest.raises(GenerationUnavailableError, match="stopped sending"):
        for piece in client.stream_chat(MESSAGES):
            received.append(piece)
    assert "".join(received) == "one two"


def test_dead_server_opens_the_circuit_and_then_fails_fast():
    breaker = CircuitBreaker(failures=2, cooldown=60)
    client = make_client(f"http://127.0.0.1:{free_port()}/v1", max_retries=5, breaker=breaker)
    with pytest.raises(GenerationUnavailableError, match="cannot be reached"):
        list(client.stream_chat(MESSAGES))
    assert breaker.is_open
    started = time.monotonic()
    with pytest.raises(GenerationUnavailableError, match="not trying it again"):
        list(client.stream_chat(MESSAGES))
    assert time.monotonic() - started < 0.05


def test_circuit_lets_a_trial_through_after_the_cooldown(llm_server):
    now = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown=30, clock=lambda: now[0])
    llm_server.script(Reply(status=503, error_message="loading"))
    client = make_client(llm_server.url, max_retries=0, breaker=breaker)
    with pytest.raises(GenerationUnavailableError):
        list(client.stream_chat(MESSAGES))
    with pytest.raises(GenerationUnavailableError, match="not trying it again for 30 s"):
        list(client.stream_chat(MESSAGES))
    now[0] = 31.0
    assert "".join(client.stream_chat(MESSAGES))
    assert not breaker.is_open


def test_a_stream_fills_usage_with_the_servers_counts(llm_server):
    llm_server.script(Reply(text="Three words here."))
    client = VllmClient(llm_server.url, "test-model")
    usage: dict[str, int] = {}
    assert "".join(client.stream_chat([{"role": "user", "content": "Say it"}], usage=usage))
    assert usage == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert llm_server.chat_requests()[-1]["stream_options"] == {"include_usage": True}
    "".join(client.stream_chat([{"role": "user", "content": "Say it"}]))
    assert "stream_options" not in llm_server.chat_requests()[-1]  # only when asked
