"""Errors of LoRA training and adapter serving, with messages a user could read."""

from __future__ import annotations

from generation.errors import GenerationError


class LoraError(GenerationError):
    """Base class: an adapter could not be trained, read or registered."""


class TrainingDataError(LoraError):
    """The training file is missing, malformed, or holds no usable example."""


class TrainingConfigError(LoraError):
    """A training option is out of range, or the base model cannot be loaded or adapted."""


class AdapterError(LoraError):
    """An adapter folder is missing files or holds something vLLM will not load."""


class AdapterRegistrationError(LoraError):
    """The vLLM server refused to load or unload an adapter, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
