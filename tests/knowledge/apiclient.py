"""Helpers of the API tests: token-authenticated clients, indexed documents, SSE parsing."""

from __future__ import annotations

import json

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

HASHING_EMBEDDER = "hashing:256"  # a real, weightless embedder: fast tests without a model


def token_client(user, keyword: str = "Token") -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token.key}")
    return client


def body_text(response) -> str:
    """Everything the client received, streamed or not, as text."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a server-sent event stream."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            events.append((name, "\n".join(data)))
    return events


def sse_json(text: str) -> list[tuple[str | None, object]]:
    return [
        (name, data if data == "[DONE]" else json.loads(data)) for name, data in sse_events(text)
    ]
