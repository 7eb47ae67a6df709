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
_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "no", "fig", "figs",
    "eq", "sec", "art", "p", "pp", "vol", "inc", "ltd", "co", "corp", "jr", "sr", "u.s",
    "approx", "dept", "est", "cf", "al", "ch", "para",
}  # fmt: skip
_NUMBER_LINE = re.compile(r"^\d{1,4}$")
_LIST_ITEM = re.compile(r"^(?:[-*\u2022!]|\d+[.)])\s")
_ENDS_SENTENCE = re.compile(r"[.!?:;,\]\u3002]$|\w-$")
# A line this short without final punctuation is taken for a heading, not a wrapped sentence.
_HEADING_CHARS = 60
_FUNCTION_WORD_TEXT = "a an the of to and or but in on at for by with from as is are was were be"
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TEXT.split())
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+")


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
    from .prompts import NOT_FOUND_ANSWER  # prompts imports nothing from here; kept local

    result = []
    for sentence in split_sentences(answer):
        if _MARKER.search(sentence) or sentence.rstrip().endswith(":"):
            continue
        words = _MARKER.sub("", sentence).split()
        if len(words) < MIN_CLAIM_WORDS or NOT_FOUND_ANSWER.rstrip(".") in sentence:
            continue
        result.append(sentence)
    return result


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, at line breaks and after . ! ? (not after common abbreviations,
    initials or decimals). Markers that follow a sentence's full stop stay with that sentence."""
    sentences: list[str] = []
    for block in _blocks(text):
        sentences.extend(_split_line(block))
    return _attach_leading_markers(sentences)


def _blocks(text: str) -> list[str]:
    """Runs of lines that may hold one sentence across line breaks: a blank line, a list item, or
    a heading ends a run; lines holding only a number (footnote marks, page numbers in extracted
    PDF text) are dropped."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if not _NUMBER_LINE.match(line)]
    blocks: list[list[str]] = [[]]
    for i, line in enumerate(lines):
        if not line:
            blocks.append([])
            continue
        if _LIST_ITEM.match(line):
            blocks.append([])
        blocks[-1].append(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _is_heading(line, following):
            blocks.append([])
    return [" ".join(block) for block in blocks if block]


def _is_heading(line: str, following: str) -> bool:
    """A short line starting with a capital, without final punctuation, followed by a line that
    starts with a capital: "3.5 Metaclustering", "Savings clauses". (A wrapped line of a narrow
    column is followed by a lower-case word or ends in a function word such as "an".)"""
    if len(line) > _HEADING_CHARS or _ENDS_SENTENCE.search(line):
        return False
    if not (line[0].isupper() or line[0].isdigit()):
        return False
    if not following or not (following[0].isupper() or following[0].isdigit()):
        return False
    return line.split()[-1].lower() not in _FUNCTION_WORDS


def _split_line(line: str) -> list[str]:
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        end = match.end()
        following = line[end : end + 1]
        if not (following.isupper() or following.isdigit() or following in "\"'([\u201c"):
            continue
        before = line[start : match.start() + 1].split()
        word = before[-1].rstrip(".").lower() if before else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        pieces.append(line[start:end].strip())
        start = end
    if line[start:].strip():
        pieces.append(line[start:].strip())
    return pieces


def _attach_leading_markers(sentences: list[str]) -> list[str]:
    result: list[str] = []
    for sentence in sentences:
        lead = re.match(r"^(?:\s*" + _MARKER.pattern + r")+", sentence, re.IGNORECASE)
        if lead and result:
            result[-1] = f"{result[-1]} {lead.group(0).strip()}"
            sentence = sentence[lead.end() :].strip()
        if sentence:
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
