"""Who may read and manage which knowledge bases, and which answers a reader may still see."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.translation import gettext_lazy

from .errors import KnowledgeBaseNotFoundError
from .models import Document, KnowledgeBase

# The refusals every surface gives (pages, the REST API, the OpenAI endpoint).
READ_ONLY = gettext_lazy(
    "You may read this knowledge base but not change its documents; ask an administrator."
)
NO_SUCH_DOCUMENT = gettext_lazy("No such document.")
NO_SUCH_KNOWLEDGE_BASE = gettext_lazy("No such knowledge base.")


def cites_a_document(citation: object) -> bool:
    return isinstance(citation, dict) and isinstance(citation.get("document_id"), int)


def answers_hidden_from(user, conversation) -> set[int]:
    """The conversation's answers that the user may no longer see, since they quote sources it
    can no longer read: answers citing a document of a knowledge base the user no longer
    reads, or a deleted document while the conversation searched such a base. Pages show a
    notice instead, and new questions do not pass them on as history."""
    answers = [
        (pk, [c["document_id"] for c in citations or [] if cites_a_document(c)])
        for pk, citations in conversation.messages.filter(role="assistant").values_list(
            "pk", "citations"
        )
    ]
    cited = {document for _, documents in answers for document in documents}
    if not cited:
        return set()
    readable = KnowledgeBase.objects.readable_by(user).values("pk")
    bases = dict(Document.objects.filter(pk__in=cited).values_list("pk", "knowledge_base_id"))
    allowed = set(
        KnowledgeBase.objects.filter(pk__in=set(bases.values()))
        .filter(pk__in=readable)
        .values_list("pk", flat=True)
    )
    lost_base = conversation.knowledge_bases.exclude(pk__in=readable).exists()

    def unreadable(document: int) -> bool:
        return bases[document] not in allowed if document in bases else lost_base

    return {pk for pk, documents in answers if any(map(unreadable, documents))}


def readable_knowledge_bases(user, ids: Iterable[int] | None = None) -> list[KnowledgeBase]:
    """The knowledge bases the user may read; with ids, exactly those, or
    KnowledgeBaseNotFoundError if any is missing or not readable."""
    readable = KnowledgeBase.objects.readable_by(user)
    if ids is None:
        return list(readable)
    wanted = set()
    for value in ids:
        try:
            wanted.add(int(value))
        except (TypeError, ValueError):
            raise KnowledgeBaseNotFoundError() from None
    found = list(readable.filter(pk__in=wanted))
    if missing := wanted - {kb.pk for kb in found}:
        raise KnowledgeBaseNotFoundError(missing)
    return found
