"""Turn text into BM25 terms: words, lower-cased, stop words dropped, stemmed; CJK as bigrams.

The same tokenizer must be used at index and at query time, so its settings travel with the
index (`Bm25Tokenizer.to_dict` / `from_dict`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import Stemmer

from .text import CJK_RANGES, cjk_bigrams, fold

# Lucene's English stop words (the list bm25s calls "en"); short on purpose, because a long list
# removes words that matter in questions ("not", "between", "only").
ENGLISH_STOPWORDS = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is")
    + ("it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there")
    + ("these", "they", "this", "to", "was", "will", "with")
)
_STOPWORD_LISTS = {"en": ENGLISH_STOPWORDS}

# A word (\w+) is cut where it switches between CJK and other scripts: "iphone手机" -> two pieces.
_PIECE = re.compile(rf"[{CJK_RANGES}]+|[^\W{CJK_RANGES}]+")
_CJK_START = re.compile(rf"[{CJK_RANGES}]")


class Bm25Tokenizer:
    """Split text into the terms a BM25 index counts.

    Words are runs of Unicode word characters (numbers included). Runs of CJK characters are
    split into overlapping character bigrams ("北京大学" -> 北京, 京大, 大学), and a run of a single
    character is kept as a unigram, so Chinese and Japanese text is searchable without a
    dictionary. Stop words and stemming apply to the other words only.

    Parameters:
        lowercase: lower-case the text first.
        stopwords: "en" for English stop words, an iterable of words, or None for none. Words are
            compared after lower-casing and before stemming.
        stemmer: a Snowball algorithm name known to PyStemmer ("english", "french", ...) or None.
        cjk_bigrams: split CJK runs into bigrams; when False a CJK run is one term.
        fold: fold the text first (`retrieval.text.fold`: Traditional Chinese to Simplified,
            full-width forms to ASCII), so that a Simplified query finds a Traditional text.
            Indexes saved before folding existed load with False, as they were built.

    Raises:
        ValueError: for an unknown stop word list or stemmer name.

    Example:
        >>> Bm25Tokenizer()("The runners were running in 北京")
        ['runner', 'were', 'run', '北京']
    """

    def __init__(
        self,
        lowercase: bool = True,
        stopwords: str | Iterable[str] | None = "en",
        stemmer: str | None = "english",
        cjk_bigrams: bool = True,
        fold: bool = True,
    ) -> None:
        self.lowercase = lowercase
        self.stopwords_setting = _stopwords_setting(stopwords)
        self.stemmer_name = stemmer
        self.cjk_bigrams = cjk_bigrams
        self.fold = fold
        self._stopwords = _resolve_stopwords(self.stopwords_setting)
        self._stem = _stem_function(stemmer)
        self._stem_words = _stem_words_function(stemmer)

    def __call__(self, text: str) -> list[str]:
        """Return the terms of `text`, in reading order."""
        if self.fold:
            text = fold(text)
        if self.lowercase:
            text = text.lower()
        pieces = _PIECE.findall(text)
        if self.cjk_bigrams and _CJK_START.search(text):
            return list(self._terms(pieces))
        # No CJK: stem all the words in one call (PyStemmer's C loop, with its cache).
        return self._stem_words([piece for piece in pieces if piece not in self._stopwords])

    def _terms(self, pieces: list[str]) -> Iterator[str]:
        for piece in pieces:
            if _CJK_START.match(piece):
                yield from cjk_bigrams(piece)
            elif piece not in self._stopwords:
                yield self._stem(piece)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-compatible data, for saving next to an index."""
        return {
            "lowercase": self.lowercase,
            "stopwords": self.stopwords_setting,
            "stemmer": self.stemmer_name,
            "cjk_bigrams": self.cjk_bigrams,
            "fold": self.fold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bm25Tokenizer:
        """Build a tokenizer from `to_dict` output.

        Raises:
            ValueError: for unknown keys, stop word lists or stemmers.
        """
        unknown = set(data) - {"lowercase", "stopwords", "stemmer", "cjk_bigrams", "fold"}
        if unknown:
            raise ValueError(f"Unknown tokenizer settings: {', '.join(sorted(unknown))}.")
        return cls(**{"fold": False, **data})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bm25Tokenizer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"Bm25Tokenizer({settings})"


def _stopwords_setting(stopwords: str | Iterable[str] | None) -> str | list[str] | None:
    if stopwords is None or isinstance(stopwords, str):
        return stopwords
    return sorted(set(stopwords))


def _resolve_stopwords(setting: str | list[str] | None) -> frozenset[str]:
    if setting is None:
        return frozenset()
    if isinstance(setting, list):
        return frozenset(setting)
    if setting not in _STOPWORD_LISTS:
        known = ", ".join(sorted(_STOPWORD_LISTS))
        raise ValueError(f"Unknown stop word list {setting!r}; known lists: {known}.")
    return _STOPWORD_LISTS[setting]


def _stem_words_function(name: str | None) -> Any:
    if name is None:
        return list
    return Stemmer.Stemmer(name).stemWords


def _stem_function(name: str | None) -> Any:
    if name is None:
        return str
    if name not in Stemmer.algorithms():
        raise ValueError(f"Unknown stemmer {name!r}; PyStemmer knows {Stemmer.algorithms()}.")
    return Stemmer.Stemmer(name).stemWord
