"""Plain data types shared by retrieval/ and generation/ (the only module generation may import)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A run of text from one place in a source file.

    page is 1-based for paged formats (PDF) and None where a format has no pages;
    heading_path lists the headings above the text, outermost first.
    """

    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attachment:
    """A file carried inside another one (an e-mail's attachment), to be ingested on its own."""

    name: str
    data: bytes


@dataclass
class ParsedDocument:
    """What a parser extracted from a file: its type, a title, sections in reading order.

    metadata holds what the file says about itself beside its text (a Markdown file's front
    matter fields other than its title, an HTML page's description and keywords), as text.
    """

    file_type: str
    title: str
    sections: list[Section]
    page_count: int | None = None
    warnings: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)  # ingested as documents
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkText:
    """A chunk ready to embed: text with its position in the source."""

    text: str
    order: int
    page: int | None
    heading_path: tuple[str, ...]
    token_count: int


@dataclass(frozen=True)
class Hit:
    """One search result of an index: a chunk id and its score (higher is better)."""

    chunk_id: int
    score: float


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with what a generator and a user need to cite it."""

    chunk_id: int
    text: str
    score: float
    document_id: int
    document_title: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    knowledge_base_id: int | None = None
