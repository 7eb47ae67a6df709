"""A small HTTP server that speaks the OpenAI chat API the way vLLM does, for tests.

It is the stand-in for the vLLM server: a real server on a real socket, serving GET /v1/models and
POST /v1/chat/completions as JSON or as server-sent events (HTTP/1.1 chunked, one
`chat.completion.chunk` per token with `choices[0].delta.content`, a last chunk carrying
`finish_reason`, then `data: [DONE]`), and errors in vLLM's shape. Replies are scripted: queue
Reply objects with script(); when the queue is empty every request gets default_reply.

    with OpenAIServer() as server:
        server.script(Reply(status=429, headers={"Retry-After": "0"}), Reply(text="Hi [1]."))
        client = VllmClient(server.url, "test-model")
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "test-model"


@dataclass
class Reply:
    """One scripted response.

    text: the assistant's reply, or a function of the request body returning it.
    status: HTTP status; anything but 200 sends an error body in vLLM's shape with error_message.
    delay: seconds to wait before sending the status line (a slow server).
    token_delay: seconds between streamed chunks.
    stall_after: stream this many chunks, then go silent until the server stops.
    """

    text: str | Callable[[dict[str, Any]], str] = "The answer is in the first source [1]."
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "Internal server error"
    delay: float = 0.0
    token_delay: float = 0.0
    stall_after: int | None = None
    finish_reason: str = "stop"


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a reader who closes the tab, a test that stops reading a stream)
    is part of the protocol, not an error worth a traceback."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OpenAIServer:
    """The test server; start() (or `with`) binds 127.0.0.1 on a free port."""

    def __init__(
        self, models: tuple[str, ...] = (DEFAULT_MODEL,), default_reply: Reply | None = None
    ) -> None:
        self.models = list(models)
        self.default_reply = default_reply or Reply()
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL as a client is configured with it, ending in /v1."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests received so far."""
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default_reply


def free_port() -> int:
    """A local port that nothing listens on (a dead server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            server.requests.append({"method": "GET", "path": self.path, "body": None})
            if self.path.rstrip("/") != "/v1/models":
                return self._error(404, "Not Found", "NotFoundError")
            created = int(time.time())
            data = [
                {"id": name, "object": "model", "created": created, "owned_by": "vllm"}
                for name in server.models
            ]
            self._json(200, {"object": "list", "data": data})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self._error(400, "Invalid JSON body", "BadRequestError")
            server.requests.append(
                {"method": "POST", "path": self.path, "body": body, "headers": dict(self.headers)}
            )
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._error(404, "Not Found", "NotFoundError")
            reply = server._next_reply()
            if reply.delay:
                server._stopping.wait(reply.delay)
            if reply.status != 200:
                return self._error(reply.status, reply.error_message, "ServerError", reply.headers)
            if body.get("model") not in server.models:
                return self._error(
                    404, f"The model `{body.get('model')}` does not exist.", "NotFoundError"
                )
            text = reply.text(body) if callable(reply.text) else reply.text
            if body.get("stream"):
                self._stream(body, text, reply)
            else:
                self._json(200, _completion(body["model"], text, reply.finish_reason))

        def _stream(self, body: dict, text: str, reply: Reply) -> None:
            model = body["model"]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            completion_id = f"chatcmpl-{uuid.uuid4().hex}"
            created = int(time.time())
            deltas = [{"role": "assistant", "content": ""}]
            deltas += [{"content": token} for token in re.findall(r"\s*\S+", text)]
            try:
                for sent, delta in enumerate(deltas):
                    if reply.stall_after is not None and sent >= reply.stall_after:
                        server._stopping.wait(3600)
                        return
                    chunk = _chunk(completion_id, created, model, delta, None)
                    self._event(json.dumps(chunk))
                    if reply.token_delay:
                        time.sleep(reply.token_delay)
                last = _chunk(completion_id, created, model, {}, reply.finish_reason)
                self._event(json.dumps(last))
                if (body.get("stream_options") or {}).get("include_usage"):
                    # As OpenAI and vLLM do: a last chunk without choices holds the counts.
                    usage = {**last, "choices": [], "usage": _usage(body, len(deltas) - 1)}
                    self._event(json.dumps(usage))
                self._event("[DONE]")
                self._write_chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _event(self, data: str) -> None:
            self._write_chunk(f"data: {data}\n\n".encode())

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(
            self, status: int, message: str, kind: str, headers: dict[str, str] | None = None
        ) -> None:
            payload = {"object": "error", "message": message, "type": kind, "param": None}
            self._json(status, payload | {"code": status}, headers)

    return Handler


def _chunk(
    completion_id: str, created: int, model: str, delta: dict, finish_reason: str | None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def _usage(body: dict, completion_tokens: int) -> dict[str, int]:
    """Token counts the fake way: one per word of the prompt's messages and of the reply."""
    prompt = sum(len(str(message.get("content", "")).split()) for message in body["messages"])
    total = prompt + completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": total}


def _completion(model: str, text: str, finish_reason: str) -> dict[str, Any]:
    words = len(text.split())
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "total_tokens": words, "completion_tokens": words},
    }
