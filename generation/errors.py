"""Errors raised by the generation library, with messages a user could read."""

from __future__ import annotations


class GenerationError(Exception):
    """Base class: an answer could not be generated."""


class GenerationUnavailableError(GenerationError):
    """The language model server cannot be used right now (down, overloaded, too slow, or the
    circuit breaker is open after repeated failures). Callers fall back to extractive answers."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GenerationRequestError(GenerationError):
    """The server refused the request itself (4xx other than 429): e.g. an unknown model or
    LoRA adapter name, or a prompt longer than the model's context. Retrying will not help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
