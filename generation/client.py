"""Client for an OpenAI-compatible chat server: vLLM (where a LoRA adapter is just another model
name), or Ollama, TGI's messages API, or any server speaking /v1/chat/completions.

It streams answers as server-sent events, bounds every wait with timeouts, retries overload and
server errors with exponential backoff and jitter (honouring Retry-After), and keeps a circuit
breaker so that a dead server costs one fast, clear GenerationUnavailableError instead of a
timeout per question.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from .errors import GenerationError, GenerationRequestError, GenerationUnavailableError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CircuitBreaker:
    """Counts consecutive failures; after `failures` of them it opens for `cooldown` seconds.

    While open, check() raises GenerationUnavailableError at once. After the cool-down one trial
    request is let through (half-open): success closes the circuit, failure opens it again.
    Thread-safe; share one breaker per server among all requests of a process.
    """

    def __init__(
        self,
        failures: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = max(1, failures)
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._remaining() > 0

    def check(self, server: str) -> None:
        """Raise GenerationUnavailableError if the circuit is open."""
        with self._lock:
            remaining = self._remaining()
        if remaining > 0:
            raise GenerationUnavailableError(
                f"The language model server at {server} failed {self.failures} time(s) in a row; "
                f"not trying it again for {remaining:.0f} s.",
                retry_after=remaining,
            )

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._consecutive >= self.failures:
                self._opened_at = self._clock()

    def _remaining(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())


@dataclass(frozen=True)
class _Attempt:
    """Why one attempt failed and whether another may help."""

    message: str
    retryable: bool
    counts_against_server: bool
    retry_after: float | None = None
    refused: bool = False  # the request itself is wrong (4xx): no retry, no fallback to hide it


class VllmClient:
    """Chat completions from an OpenAI-compatible server, streamed or whole.

    base_url: the server root or its /v1 URL, e.g. http://vllm:8000/v1.
    model: the default model name; a call may name another (a knowledge base's LoRA adapter).
    connect_timeout, read_timeout: seconds to open a connection, and to wait for each piece of
    the response (the first token included); a slower server raises GenerationUnavailableError.
    max_retries: extra attempts after a 429, a 5xx or a connection error (0: none).
    backoff, max_backoff: seconds; attempt k waits a random time up to backoff * 2**k, capped,
    or the server's Retry-After when it sends one (up to max_backoff; longer gives up at once).
    breaker: shared CircuitBreaker; a private one is made if not given.

    >>> client = VllmClient("http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct")
    >>> "".join(client.stream_chat([{"role": "user", "content": "Hi"}]))  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        max_tokens: int = 512,
        temperature: float = 0.1,
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/v1") else root + "/v1"
        self.model = model
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
        )
        self._read_timeout = read_timeout

    def close(self) -> None:
        self._http.close()

    def list_models(self) -> list[str]:
        """Model names the server offers (base models and registered LoRA adapters)."""
        with self._request("GET", "/models") as response:
            response.read()
            data = self._json(response)
        return [item.get("id", "") for item in data.get("data", [])]

    def chat(self, messages: list[dict[str, str]], model: str | None = None, **options: Any) -> str:
        """The whole reply to messages (no streaming). Raises GenerationError subclasses."""
        body = self._body(messages, model, stream=False, **options)
        with self._request("POST", "/chat/completions", json=body) as response:
            response.read()
            data = self._json(response)
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise GenerationError("The language model server sent a reply without text.") from None

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        model: str | None = None,
        usage: dict[str, int] | None = None,
        **options: Any,
    ) -> Iterator[str]:
        """Yield the reply to messages piece by piece as the server writes it.

        Retries happen only before the first piece; a stream that breaks later raises
        GenerationUnavailableError. options override max_tokens, temperature and the like.
        With a usage dict, the server is asked for its token counts (stream_options), which
        fill the dict (prompt_tokens, completion_tokens, total_tokens) if it sends them.
        """
        if usage is not None:
            options.setdefault("stream_options", {"include_usage": True})
        body = self._body(messages, model, stream=True, **options)
        with self._request("POST", "/chat/completions", json=body) as response:
            try:
                yield from _sse_deltas(response.iter_lines(), usage)
            except httpx.TimeoutException:
                self.breaker.record_failure()
                raise GenerationUnavailableError(
                    "The language model server stopped sending its answer "
                    f"(no data for {self._read_timeout:g} s)."
                ) from None
            except httpx.TransportError:
                self.breaker.record_failure()
                raise GenerationUnavailableError(
                    "The connection to the language model server broke mid-answer."
                ) from None

    def _body(
        self, messages: list[dict[str, str]], model: str | None, stream: bool, **options: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model or self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }
        body.update(options)
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> _OpenResponse:
        """Open a response with a 2xx status, retrying what may succeed on a later attempt."""
        attempt = 0
        while True:
            self.breaker.check(self.base_url)
            response, failure = self._attempt(method, path, **kwargs)
            if response is not None:
                self.breaker.record_success()
                return _OpenResponse(response)
            assert failure is not None
            if failure.counts_against_server:
                self.breaker.record_failure()
            if failure.refused:
                raise GenerationRequestError(failure.message)
            if not failure.retryable or attempt >= self.max_retries or self.breaker.is_open:
                raise GenerationUnavailableError(failure.message, retry_after=failure.retry_after)
            delay = self._delay(attempt, failure.retry_after)
            if delay is None:
                raise GenerationUnavailableError(failure.message, retry_after=failure.retry_after)
            self._sleep(delay)
            attempt += 1

    def _attempt(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response | None, _Attempt | None]:
        try:
            request = self._http.build_request(method, path, **kwargs)
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as error:
            what = "connect" if isinstance(error, httpx.ConnectTimeout) else "answer"
            return None, _Attempt(
                f"The language model server at {self.base_url} did not {what} in time.",
                retryable=isinstance(error, httpx.ConnectTimeout),
                counts_against_server=True,
            )
        except httpx.TransportError:
            return None, _Attempt(
                f"The language model server at {self.base_url} cannot be reached.",
                retryable=True,
                counts_against_server=True,
            )
        if response.is_success:
            return response, None
        try:
            response.read()
        except httpx.HTTPError:
            pass
        finally:
            response.close()
        return None, _failed_status(response)

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            return retry_after if retry_after <= self.max_backoff else None
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        # "Equal jitter": at least half the ceiling, so retries never come back-to-back, and a
        # random rest, so that many clients do not retry in lock-step.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise GenerationError(
                "The language model server sent a reply that is not JSON."
            ) from None
        if not isinstance(data, dict):
            raise GenerationError("The language model server sent an unexpected reply.")
        return data


class _OpenResponse:
    """Context manager that closes a streamed httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _failed_status(response: httpx.Response) -> _Attempt:
    status = response.status_code
    detail = _error_detail(response)
    if status in RETRY_STATUSES:
        busy = "is overloaded" if status == 429 else f"failed (HTTP {status})"
        return _Attempt(
            f"The language model server {busy}{detail}.",
            retryable=True,
            counts_against_server=status != 429,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    return _Attempt(
        f"The language model server refused the request (HTTP {status}){detail}.",
        retryable=False,
        counts_against_server=False,
        refused=True,
    )


def _error_detail(response: httpx.Response) -> str:
    """The server's own error message, if it sent one in the OpenAI error shape."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else data.get("message", "")
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        message = message or data["detail"]
    return f": {str(message)[:300]}" if message else ""


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _sse_deltas(lines: Iterator[str], usage: dict[str, int] | None = None) -> Iterator[str]:
    """Text pieces from an OpenAI-style server-sent event stream, up to `data: [DONE]`; the token
    counts of a chunk that carries them go into usage."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), "event:" and "id:" lines
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError:
            raise GenerationError("The language model server sent a malformed event.") from None
        if isinstance(event, dict) and event.get("error"):
            error = event["error"]
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            raise GenerationUnavailableError(
                f"The language model server failed mid-answer: {message[:300]}"
            )
        counts = event.get("usage") if isinstance(event, dict) else None
        if usage is not None and isinstance(counts, dict):
            usage.update({k: v for k, v in counts.items() if isinstance(v, int)})
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content
