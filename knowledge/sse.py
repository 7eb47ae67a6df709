"""Server-sent events: the one framing and response the chat page and both APIs stream with."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse


def sse_event(event: str | None, data: Any) -> str:
    """One server-sent event; data is JSON on a single line."""
    payload = data if isinstance(data, str) else json.dumps(data, cls=DjangoJSONEncoder)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def event_stream(events: Iterable[str]) -> StreamingHttpResponse:
    """A response that sends the events as they come (no caching, no proxy buffering)."""
    response = StreamingHttpResponse(events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return response
