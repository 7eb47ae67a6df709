"""An OpenAI-compatible API (/v1/chat/completions, /v1/models) over the caller's knowledge bases,
so that any OpenAI client or chat front end can ask them questions.

Models name what is searched: "knowledge" is every knowledge base the caller may read (the
default, also when "model" is empty or missing), "kb:NAME" (or plain "NAME") is one of them.
The last user message is the question; earlier user and assistant messages are the conversation
it continues; system messages are ignored (the server's own prompt governs answers). The answer
carries its citations in "citations" on the message (streaming: on the last chunk).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import access, answering, components, conversations
from . import serializers as s
from .models import Conversation, KnowledgeBase
from .rest import AskThrottle, EventStreamRenderer, guarded, openai_error
from .sse import event_stream, sse_event

ALL_MODEL = "knowledge"
PREFIX = "kb:"
OWNER = "company-knowledge"
ERRORS = {
    code: OpenApiResponse(OpenApiTypes.OBJECT, description=f"{text}: OpenAI's error object")
    for code, text in [(400, "Invalid request"), (401, "No or wrong key"), (404, "No such model")]
}


class OpenAIView(APIView):
    openai_errors = True  # the exception handler answers in OpenAI's error shape


def knowledge_bases_for_model(user, model: str) -> list[KnowledgeBase]:
    if model in ("", ALL_MODEL):
        return access.readable_knowledge_bases(user)
    name = model.removeprefix(PREFIX)
    found = KnowledgeBase.objects.readable_by(user).filter(name=name).first()
    if found is None:
        raise exceptions.NotFound(
            f"The model {model!r} does not exist or you do not have access to it.",
            "model_not_found",
        )
    return [found]


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def question_and_history(messages: list[dict]) -> tuple[str, list[tuple[str, str]]]:
    turns = [
        (m["role"], message_text(m["content"]).strip())
        for m in messages
        if m["role"] in ("user", "assistant")
    ]
    if not turns or turns[-1][0] != "user" or not turns[-1][1]:
        raise exceptions.ValidationError(
            {"messages": ["The last user or assistant message must be a user message with text."]}
        )
    question, history = turns[-1][1], [turn for turn in turns[:-1] if turn[1]]
    check_limits(question, history)
    return question, history


def check_limits(question: str, history: list[tuple[str, str]]) -> None:
    """The REST API's limit on a question, a bound on the earlier turns (the serializer bounds
    their number), and no NUL character, which PostgreSQL cannot store: checked before
    anything is stored."""
    problem = None
    if len(question) > s.MAX_QUERY_CHARS:
        problem = gettext("The question may be at most %(limit)d characters long.") % {
            "limit": s.MAX_QUERY_CHARS
        }
    elif sum(len(text) for _, text in history) > s.MAX_CHAT_CHARS:
        problem = gettext("The earlier messages may hold at most %(limit)d characters.") % {
            "limit": s.MAX_CHAT_CHARS
        }
    elif any("\x00" in text for text in [question, *(text for _, text in history)]):
        problem = gettext("Messages may not contain the NUL character (\\u0000).")
    if problem:
        raise exceptions.ValidationError({"messages": [problem]})


def usage(done: answering.Answer, question: str, history: list[tuple[str, str]]) -> dict[str, int]:
    """OpenAI's token counts: the model server's own when the answer carries them, otherwise
    (extractive answers, or a server that sent none) counted with the embedding model's
    tokenizer: the prompt is the question, the earlier turns and the passages the answer was
    drawn from, the completion is the answer."""
    if done.usage is not None:
        prompt, answer = done.usage.prompt_tokens, done.usage.completion_tokens
    else:
        read = [question, *(text for _, text in history)]
        read += [passage.text for passage in done.passages]
        counts = components.get_embedder().count_tokens([*read, done.text])
        prompt, answer = sum(counts[:-1]), counts[-1]
    return {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer}


class ChatCompletions(OpenAIView):
    renderer_classes = [JSONRenderer, EventStreamRenderer]
    throttle_classes = [*APIView.throttle_classes, AskThrottle]

    @extend_schema(
        summary="OpenAI-compatible chat completion over your knowledge bases",
        description=__doc__,
        request=s.ChatSerializer,
        responses={
            (200, "application/json"): s.ChatCompletionSerializer,
            (200, "text/event-stream"): s.ServerSentEventSerializer,
            **ERRORS,
        },
    )
    def post(self, request: Request):
        chat = s.ChatSerializer(data=request.data)
        chat.is_valid(raise_exception=True)
        data = chat.validated_data
        model = data.get("model") or ALL_MODEL
        knowledge_bases = knowledge_bases_for_model(request.user, model)
        question, history = question_and_history(data["messages"])
        # The earlier turns, stored for the answer to continue; marked as this endpoint's, so
        # that the conversation stays out of the chat page's list.
        conversation = conversations.start_conversation(
            request.user,
            history[0][1] if history else question,
            source=Conversation.Source.OPENAI,
            history=history,
        )
        count = functools.partial(usage, question=question, history=history)
        if data["stream"]:
            events = answering.stream_answer(
                question, knowledge_bases, user=request.user, conversation=conversation
            )
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            return event_stream(completion_chunks(events, model, count if include_usage else None))
        done = answering.answer_question(
            question, knowledge_bases, user=request.user, conversation=conversation
        )
        return Response(completion(done, model, count(done)))


def completion(done: answering.Answer, model: str, tokens: dict[str, int]) -> dict[str, Any]:
    citations = s.citations_body(done.citations)
    message = {"role": "assistant", "content": done.text, "citations": citations}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": tokens,
    }


def completion_chunks(
    events: Iterator[answering.AnswerEvent],
    model: str,
    count: Callable[[answering.Answer], dict[str, int]] | None = None,
) -> Iterator[str]:
    """chat.completion.chunk events: the role, the answer's deltas, a last chunk with
    finish_reason and citations, then [DONE]. With count (stream_options.include_usage), as
    OpenAI does, every chunk carries "usage": null and one more chunk with no choices carries
    the token counts before [DONE]. An error midway ends the stream with OpenAI's error
    object."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    if count is not None:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return sse_event(None, {**base, "choices": [choice], **extra})

    def chunks() -> Iterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        for event in events:
            if isinstance(event, answering.Delta) and event.text:
                yield chunk({"content": event.text})
            elif isinstance(event, answering.Done):
                yield chunk({}, "stop", citations=s.citations_body(event.answer.citations))
                if count is not None:
                    yield sse_event(None, {**base, "choices": [], "usage": count(event.answer)})
        yield sse_event(None, "[DONE]")

    return guarded(
        chunks(), on_error=lambda status, body: sse_event(None, openai_error(status, body))
    )


class Models(OpenAIView):
    @extend_schema(
        summary="The models you may use: every knowledge base you may read",
        responses={200: s.ModelListSerializer, 401: ERRORS[401]},
    )
    def get(self, request: Request) -> Response:
        knowledge_bases = access.readable_knowledge_bases(request.user)
        created = min((int(kb.created_at.timestamp()) for kb in knowledge_bases), default=0)
        data = [{"id": ALL_MODEL, "object": "model", "created": created, "owned_by": OWNER}]
        data += [
            {
                "id": PREFIX + kb.name,
                "object": "model",
                "created": int(kb.created_at.timestamp()),
                "owned_by": OWNER,
            }
            for kb in knowledge_bases
        ]
        return Response({"object": "list", "data": data})
