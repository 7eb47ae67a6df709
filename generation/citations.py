"""Citation markers in an answer: find them, check them against the passages given, and map each
to the document, page and chunk it points at.

Accepted markers: [1], [1, 3], [2-4] (also with an en dash or "Source 1"), and runs such as
[1][2]. A number with no matching passage is dropped from the answer and reported; a sentence
that states something without any valid marker is reported as uncited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from retrieval.text import split_sentences, word_count
from retrieval.types import Passage

# A range wider than this is not a citation the model meant; it is cut at this many numbers.
MAX_RANGE = 50
# Sentences shorter than this many words (headings, "In short:") are not reported as uncited.
MIN_CLAIM_WORDS = 4

_NUMBER_OR_RANGE = r"\d+(?:\s*[-\u2013]\s*\d+)?"
_MARKER = re.compile(
    r"\[\s*(?:sources?\s*)?("
    + _NUMBER_OR_RANGE
    + r"(?:\s*[,;]\s*(?:sources?\s*)?"
    + _NUMBER_OR_RANGE
    + r")*)\s*\]",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Citation:
    """A valid citation: the source number and where that source comes from."""

    n: int
    chunk_id: int
    document_id: int
    document_title: str
    page: int | None
    text: str

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "document_id": self.document_id,
            "document_title": self.document_title,
            "page": self.page,
            "chunk_id": self.chunk_id,
            "text": self.text,
        }


@dataclass
class CheckedAnswer:
    """An answer after checking: invalid markers removed, citations in order of first use."""

    answer: str
    citations: list[Citation] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)
    uncited_sentences: list[str] = field(default_factory=list)


def parse_marker(body: str) -> list[int]:
    """Numbers in one marker's body: '1, 3' -> [1, 3]; '2-4' -> [2, 3, 4] (at most MAX_RANGE)."""
    numbers: list[int] = []
    for part in re.split(r"[,;]", body):
        bounds = [int(b) for b in re.findall(r"\d+", part)]
        if not bounds:
            continue
        low, high = bounds[0], bounds[-1]
        if high < low:
            numbers.append(low)
        else:
            numbers.extend(range(low, min(high, low + MAX_RANGE - 1) + 1))
    return numbers


def find_citations(text: str) -> list[int]:
    """Every cited number in text, in order of appearance, repeats included."""
    return [n for match in _MARKER.finditer(text) for n in parse_marker(match.group(1))]


def check_citations(answer: str, passages: Sequence[Passage]) -> CheckedAnswer:
    """Check answer's markers against passages numbered from 1.

    Invalid numbers are removed from their marker (a marker left empty is removed entirely) and
    listed once each in invalid_citations. Returns the cleaned answer, the valid citations in order
    of first use, and the sentences that carry no valid citation.
    """
    valid_numbers = range(1, len(passages) + 1)
    invalid: list[int] = []
    used: list[int] = []

    def rewrite(match: re.Match[str]) -> str:
        numbers = parse_marker(match.group(1))
        kept = []
        for n in numbers:
            if n in valid_numbers:
                if n not in kept:
                    kept.append(n)
                if n not in used:
                    used.append(n)
            elif n not in invalid:
                invalid.append(n)
        if len(kept) == len(numbers):
            return match.group(0)
        return "[" + ", ".join(str(n) for n in kept) + "]" if kept else ""

    cleaned = _MARKER.sub(rewrite, answer)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    citations = [_citation(n, passages[n - 1]) for n in used]
    return CheckedAnswer(cleaned, citations, invalid, uncited_sentences(cleaned))


def uncited_sentences(answer: str) -> list[str]:
    """Sentences of answer that state something (MIN_CLAIM_WORDS words or more) without a
    citation marker; a sentence followed only by markers counts as cited."""
    from .prompts import NOT_FOUND_ANSWERS  # prompts imports nothing from here; kept local

    result = []
    for sentence in split_sentences(answer):
        if _MARKER.search(sentence) or sentence.rstrip().endswith(":"):
            continue
        words = word_count(_MARKER.sub("", sentence))
        if words < MIN_CLAIM_WORDS or any(
            reply.rstrip(".\u3002") in sentence for reply in NOT_FOUND_ANSWERS.values()
        ):
            continue
        result.append(sentence)
    return result


def _citation(n: int, passage: Passage) -> Citation:
    return Citation(
        n=n,
        chunk_id=passage.chunk_id,
        document_id=passage.document_id,
        document_title=passage.document_title,
        page=passage.page,
        text=passage.text,
    )


class CitationRenumberer:
    """Renumber an answer's markers by first use, as it streams: the first source the answer
    cites becomes [1], the next new one [2], and so on, so an answer never reads "... [5]. ...
    [3]." Numbers outside 1..count are left for `check_citations` to drop.

    feed() takes each streamed piece and returns the text ready to show (a marker cut between
    two pieces is held back until it closes); flush() returns what is held at the end.
    order() lists the original numbers in their new order: the cited ones, then the rest.

    >>> renumber = CitationRenumberer(6)
    >>> renumber.feed("Leave is 25 days [4]. It accrues monthly [2")
    'Leave is 25 days [1]. It accrues monthly '
    >>> renumber.feed("] [4].") + renumber.flush()
    '[2] [1].'
    >>> renumber.order()
    [4, 2, 1, 3, 5, 6]
    """

    # A "[" this far from the end of what has arrived may still become a marker.
    _LONGEST_MARKER = 40

    def __init__(self, count: int) -> None:
        self.count = count
        self.mapping: dict[int, int] = {}
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        opening = text.rfind("[")
        if (
            opening != -1
            and "]" not in text[opening:]
            and len(text) - opening < self._LONGEST_MARKER
        ):
            text, self._held = text[:opening], text[opening:]
        else:
            self._held = ""
        return _MARKER.sub(self._rewrite, text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return _MARKER.sub(self._rewrite, text)

    def renumbered(self, text: str) -> str:
        """A whole answer renumbered at once."""
        return self.feed(text) + self.flush()

    def order(self) -> list[int]:
        cited = sorted(self.mapping, key=self.mapping.__getitem__)
        return cited + [n for n in range(1, self.count + 1) if n not in self.mapping]

    def _rewrite(self, match: re.Match[str]) -> str:
        numbers = []
        for n in parse_marker(match.group(1)):
            if 1 <= n <= self.count:
                n = self.mapping.setdefault(n, len(self.mapping) + 1)
            if n not in numbers:
                numbers.append(n)
        return "[" + ", ".join(str(n) for n in numbers) + "]"
