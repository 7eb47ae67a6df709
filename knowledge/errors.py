"""Domain errors of the knowledge app, raised by its services and mapped by each surface
(pages, API, tasks, commands) to its own message or status.
"""

from __future__ import annotations

from collections.abc import Iterable


class UploadRejectedError(Exception):
    """An upload was refused before it was stored; the message says why, and kind (one of
    knowledge.uploads.Refusal) lets each surface choose its own status or wording."""

    def __init__(self, message: str, kind: str = "rejected") -> None:
        super().__init__(message)
        self.kind = kind


class DocumentDeletedError(Exception):
    """The document was deleted while it was being ingested: the work stops."""


class DocumentBusyError(Exception):
    """Another worker holds the document's lease; try again after retry_after seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"The document is being ingested elsewhere; retry in {retry_after:.0f} s.")
        self.retry_after = retry_after


class KnowledgeBaseNotFoundError(Exception):
    """A requested knowledge base does not exist or the user may not read it (the two look the
    same, so that a caller learns nothing about knowledge bases it cannot read)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        ids = sorted(ids)
        listed = ", ".join(str(i) for i in ids)
        super().__init__(f"No such knowledge base: {listed}." if ids else "No such knowledge base.")
        self.ids = ids


class LockTimeoutError(Exception):
    """A knowledge base's lock was not acquired within the configured time."""

    retry_after = 60  # seconds a client is told to wait before trying again (Retry-After)
