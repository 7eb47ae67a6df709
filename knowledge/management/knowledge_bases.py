"""Resolving the `--kb NAME` option of the management commands, written once."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.management.base import CommandError

from knowledge.models import KnowledgeBase


def knowledge_bases_named(names: Iterable[str]) -> list[KnowledgeBase]:
    """The knowledge bases with these names, in the order given.

    Raises:
        CommandError: naming the missing ones and the known ones.
    """
    names = list(dict.fromkeys(names))
    by_name = {kb.name: kb for kb in KnowledgeBase.objects.filter(name__in=names)}
    if missing := [name for name in names if name not in by_name]:
        known = ", ".join(KnowledgeBase.objects.values_list("name", flat=True)) or "none yet"
        raise CommandError(
            f"No knowledge base named {', '.join(map(repr, missing))}. Known: {known}. "
            "Create one with `manage.py ingest PATH --kb NAME`."
        )
    return [by_name[name] for name in names]


def knowledge_base_named(name: str) -> KnowledgeBase:
    """The knowledge base with this name; CommandError if there is none."""
    return knowledge_bases_named([name])[0]


def selected_knowledge_bases(name: str | None) -> list[KnowledgeBase]:
    """The knowledge base with this name, or all of them when no name is given."""
    if name:
        return [knowledge_base_named(name)]
    return list(KnowledgeBase.objects.all())
