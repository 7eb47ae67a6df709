"""The extractive generator: an answer made of the retrieved passages' own sentences, each cited.

Used when no language model is configured (the default) and as the fallback when the model
server is unavailable. It splits the passages into sentences, scores each against the question
(cosine similarity of embeddings, from the embed function it is given, blended with the share of
the question's content words the sentence contains), and keeps the best few above a threshold.
When none clears it the answer says that it was not found in the documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.types import Passage

from .citations import split_sentences
from .prompts import NOT_FOUND_ANSWER

EmbedFunction = Callable[[list[str]], np.ndarray]

_FULL_STOP = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")
# A fragment this long without a full stop is a sentence cut at a chunk's end, still worth quoting.
_LONG_FRAGMENT_WORDS = 12
_TABLE_BARS = 3  # a sentence with this many | bars is a table row, not prose
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORD_TEXT = """
a about above after again all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers him his how i if in into is it its itself just me more most my no nor not
now of off on once only or other our out over own same she should so some such than that the their
them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours please tell explain describe give
show find know say said
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class ScoredSentence:
    """A sentence of passage n (1-based) with its relevance to the question."""

    text: str
    n: int
    score: float
    similarity: float
    overlap: float


@dataclass
class ExtractiveAnswer:
    """The composed answer; found is False when nothing cleared the threshold."""

    text: str
    found: bool
    sentences: list[ScoredSentence] = field(default_factory=list)


class ExtractiveGenerator:
    """Compose a cited answer from the most relevant sentences of the passages.

    embed: maps a list of texts to an (n, d) array of L2-normalised vectors.
    max_sentences: sentences in an answer (1 or more).
    threshold: minimum blended score in [0, 1] for a sentence to be used.
    relative: a sentence must also score at least this share of the best sentence's score, so a
    strong answer is not diluted by weak neighbours.
    lexical_weight: share of the score that comes from word overlap (the rest is cosine).

    >>> generator = ExtractiveGenerator(embedder.embed)  # doctest: +SKIP
    >>> generator.answer("How long is the warranty?", passages).text  # doctest: +SKIP
    'The warranty lasts two years from delivery. [1]'
    """

    def __init__(
        self,
        embed: EmbedFunction,
        *,
        max_sentences: int = 3,
        threshold: float = 0.35,
        relative: float = 0.65,
        lexical_weight: float = 0.5,
        min_words: int = 4,
        max_chars: int = 500,
    ) -> None:
        self.embed = embed
        self.max_sentences = max(1, max_sentences)
        self.threshold = threshold
        self.relative = relative
        self.lexical_weight = lexical_weight
        self.min_words = min_words
        self.max_chars = max_chars

    def answer(self, question: str, passages: Sequence[Passage]) -> ExtractiveAnswer:
        """The answer to question from passages numbered [1]..[n] in the order given."""
        chosen = self.select(question, passages)
        if not chosen:
            return ExtractiveAnswer(NOT_FOUND_ANSWER, found=False)
        text = " ".join(_cited(s.text, s.n) for s in chosen)
        return ExtractiveAnswer(text, found=True, sentences=chosen)

    def select(self, question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
        """The sentences that answer best, best first, at most max_sentences."""
        candidates = self._candidates(passages)
        if not candidates or not question.strip():
            return []
        vectors = np.asarray(self.embed([question] + [text for text, _ in candidates]))
        similarities = vectors[1:] @ vectors[0]
        query_words = content_words(question)
        scored = []
        for (text, n), similarity in zip(candidates, similarities.tolist(), strict=True):
            overlap = word_overlap(query_words, content_words(text))
            score = (1 - self.lexical_weight) * max(similarity, 0.0) + self.lexical_weight * overlap
            scored.append(ScoredSentence(text, n, score, similarity, overlap))
        scored.sort(key=lambda s: s.score, reverse=True)
        floor = max(self.threshold, scored[0].score * self.relative)
        chosen: list[ScoredSentence] = []
        for sentence in scored:
            if sentence.score < floor or len(chosen) == self.max_sentences:
                break
            if not any(_near_duplicate(sentence.text, c.text) for c in chosen):
                chosen.append(sentence)
        return chosen

    def _candidates(self, passages: Sequence[Passage]) -> list[tuple[str, int]]:
        seen: set[str] = set()
        candidates = []
        for n, passage in enumerate(passages, start=1):
            for sentence in split_sentences(_without_table_rows(passage.text)):
                sentence = sentence.strip(" -*!\u2022")
                key = sentence.lower()
                if key in seen or not self._is_statement(sentence):
                    continue
                seen.add(key)
                candidates.append((_clip(sentence, self.max_chars), n))
        return candidates

    def _is_statement(self, sentence: str) -> bool:
        """A full sentence, not a heading, a caption stub, a lead-in ending in a colon or the
        rows of a table (cells between | bars: quoted whole they read as noise)."""
        words = len(sentence.split())
        if words < self.min_words or sentence.count("|") >= _TABLE_BARS:
            return False
        return bool(_FULL_STOP.search(sentence)) or words >= _LONG_FRAGMENT_WORDS


def _without_table_rows(text: str) -> str:
    """text less its Markdown table rows (lines of | cells), which split_sentences would
    otherwise join to the prose around them."""
    return "\n".join(line for line in text.split("\n") if line.count("|") < _TABLE_BARS)


def content_words(text: str) -> set[str]:
    """Lower-cased words of text without stop words, with a plural 's' removed."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return words


def word_overlap(query: set[str], sentence: set[str]) -> float:
    """Share of the query's content words found in the sentence, in [0, 1]."""
    return len(query & sentence) / len(query) if query else 0.0


def _near_duplicate(a: str, b: str) -> bool:
    words_a, words_b = content_words(a), content_words(b)
    if not words_a or not words_b:
        return False
    return len(words_a & words_b) / min(len(words_a), len(words_b)) > 0.8


def _clip(sentence: str, limit: int) -> str:
    if len(sentence) <= limit:
        return sentence
    return sentence[: limit - 1].rsplit(" ", 1)[0] + "\u2026"


def _cited(text: str, n: int) -> str:
    """The sentence with its marker before the full stop: 'It lasts two years [1].'"""
    text = text.strip().rstrip(".;:,").rstrip()
    return f"{text} [{n}]."
