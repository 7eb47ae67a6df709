"""Server-sent events: the one framing and response the chat page and both APIs stream with."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.utils import translation

T = TypeVar("T")


def sse_event(event: str | None, data: Any) -> str:
    """One server-sent event; data is JSON on a single line."""
    payload = data if isinstance(data, str) else json.dumps(data, cls=DjangoJSONEncoder)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def in_language(language: str | None, events: Iterable[T]) -> Iterator[T]:
    """The events, made with the request's language active: a stream is read after its view has
    returned, maybe in another thread, and its notices and errors must speak that language."""
    with translation.override(language):
        yield from events


def event_stream(events: Iterable[str]) -> StreamingHttpResponse:
    """A response that sends the events as they come (no caching, no proxy buffering), in the
    request's language."""
    streamed = in_language(translation.get_language(), events)
    response = StreamingHttpResponse(streamed, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return response
