"""Token-aware chunking of parsed sections (pure functions).

Chunks never cross a page or heading boundary, so each keeps the exact page and heading it came
from. Lengths are measured with the embedding model's own tokenizer, and no chunk is longer than
the model's maximum sequence length, so nothing is silently truncated at embedding time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from langchain_text_splitters import RecursiveCharacterTextSplitter

from .text import CHUNK_SEPARATORS as SEPARATORS
from .types import ChunkText, Section


def chunk_sections(
    sections: Iterable[Section],
    count_tokens: Callable[[Sequence[str]], list[int]],
    split_tokens: Callable[[str, int], list[str]],
    chunk_tokens: int = 200,
    overlap_tokens: int = 40,
    max_tokens: int = 254,
) -> list[ChunkText]:
    """Split sections into chunks of about chunk_tokens tokens with overlap_tokens of overlap.

    count_tokens: token counts of a batch of texts, from the embedding model's tokenizer.
    split_tokens: cuts a text into pieces of at most n tokens (the last resort for run-on text).
    Raises ValueError if overlap_tokens is not smaller than chunk_tokens.
    """
    if overlap_tokens >= chunk_tokens:
        raise ValueError("overlap_tokens must be smaller than chunk_tokens")
    limit = min(chunk_tokens, max_tokens)
    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        chunk_size=limit,
        chunk_overlap=overlap_tokens,
        length_function=lambda text: count_tokens([text])[0],
        keep_separator="end",
        strip_whitespace=True,
    )
    chunks: list[ChunkText] = []
    for section in sections:
        pieces = _bounded(splitter.split_text(section.text), count_tokens, split_tokens, limit)
        for text, tokens in pieces:
            chunks.append(ChunkText(text, len(chunks), section.page, section.heading_path, tokens))
    return chunks


def sparse_text(text: str, title: str = "", heading_path: Sequence[str] = ()) -> str:
    """What the BM25 index holds for a chunk: the document's title and the headings above the
    chunk, each on a line of its own, then the chunk's text. A passage deep in a long document
    then still matches the words that say what the whole is about, as a title field does in a
    search engine (BEIR's multi-field BM25). A title or heading the text already starts with
    (the first chunk of a section) is not repeated, nor is a heading equal to the title.

    The dense vector is made from the text alone: the same title on every chunk made the
    embeddings of a document's passages alike and lowered nDCG@10 (bench/tune.py).
    """
    head = text[:600]
    context = []
    for part in (title, *heading_path):
        part = part.strip()
        if part and part not in context and part not in head:
            context.append(part)
    return "\n".join([*context, text])


def _bounded(
    pieces: list[str],
    count_tokens: Callable[[Sequence[str]], list[int]],
    split_tokens: Callable[[str, int], list[str]],
    limit: int,
) -> list[tuple[str, int]]:
    """Drop empty pieces and cut any piece still over the limit at token boundaries.

    The splitter adds up piece lengths, which can differ by a token or two from the length of
    the joined text, so each final chunk is measured again.
    """
    pieces = [piece for piece in pieces if piece.strip()]
    bounded: list[tuple[str, int]] = []
    for piece, tokens in zip(pieces, count_tokens(pieces), strict=True):
        if tokens <= limit:
            bounded.append((piece, tokens))
            continue
        parts = [part for part in split_tokens(piece, limit) if part.strip()]
        bounded.extend(zip(parts, count_tokens(parts), strict=True))
    return bounded
