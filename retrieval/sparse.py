"""BM25 index over chunk ids: incremental add and remove, top-k search, save and load.

Scores are those of rank-bm25's BM25Okapi (the reference our tests compare against), computed
from per-term posting arrays so that a query only reads the postings of its own terms.

Storage is log-structured: each `add` writes a new segment of postings (term-major, slots
ascending), and small segments are merged into bigger ones as they pile up, so adding costs
O(log n) per posting amortised. Removed documents are tombstoned; their postings go at the next
merge, and a full compaction (renumbering documents and dropping unused terms) runs once a
quarter of the document slots are dead. `save` writes the segments as they are.

A posting's length-normalised weight tf / (tf + k1 * (1 - b + b * dl / avgdl)) is computed the
first time its term is queried and kept until the average length changes (any add or remove),
so a warm index answers from precomputed weights.
"""

from __future__ import annotations

import json
import math
import os
import threading
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

try:
    # scipy's C kernel for y += A @ x, applied to one term's postings as a one-column matrix: it
    # adds in place, about 8x faster than numpy's scores[rows] += ... (no public equivalent).
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec
except ImportError:  # pragma: no cover - a future scipy may move it; numpy gives the same sums
    _csc_matvec = None

from retrieval.errors import IndexMismatchError, IndexNotBuiltError
from retrieval.files import fsync_path
from retrieval.ids import as_ids, last_occurrences
from retrieval.tokenize import Bm25Tokenizer
from retrieval.types import Hit

FORMAT_VERSION = 1
META_FILE = "sparse.json"
VOCABULARY_FILE = "sparse-vocabulary.json"
ARRAYS_FILE = "sparse.npz"
_SEGMENT_ARRAYS = ("terms", "offsets", "rows", "frequencies")

_BLOCK_DOCUMENTS = 50_000  # documents tokenised into one block; bounds the memory of one add
_MERGE_RATIO = 2  # merge the newest segment into the one before while that is <= 2x its size
_COMPACT_DEAD_FRACTION = 0.25
_SAMPLE_SIZE = 4096  # scores sampled to bound the k-th best score before selecting candidates


@dataclass
class _Segment:
    """Postings of the documents in slots [first_slot, stop_slot), grouped by term."""

    first_slot: int
    stop_slot: int
    terms: np.ndarray  # int32, sorted term ids that have postings here
    offsets: np.ndarray  # int64, postings of terms[i] are [offsets[i], offsets[i + 1])
    rows: np.ndarray  # int32 slot of each posting, ascending within a term
    frequencies: np.ndarray  # float32 term frequency of each posting
    pending_dead: list[int] = field(default_factory=list)  # removed, df not yet decremented
    weights: np.ndarray | None = None  # float64 tf / (tf + norm) per posting, see below
    fresh: np.ndarray | None = None  # bool per term: its weights are up to date

    @property
    def size(self) -> int:
        return len(self.rows)

    def weighted_postings(
        self, term: int, norm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Return (slots, tf / (tf + norm[slot])) of one term, or None if it has none here.

        The weights are computed on a term's first use and kept until `forget_weights`; the
        array is allocated empty, so memory is only taken for the terms that get queried.
        """
        # A scalar of the array's own type: numpy casts the whole array for any other (a Python
        # int made each lookup ~150 us instead of ~1 us, most of a query's time).
        i = int(self.terms.searchsorted(self.terms.dtype.type(term)))
        if i == len(self.terms) or self.terms[i] != term:
            return None
        if self.weights is None or self.fresh is None:
            self.weights = np.empty(self.size)
            self.fresh = np.zeros(len(self.terms), dtype=bool)
        start, stop = self.offsets[i], self.offsets[i + 1]
        rows = self.rows[start:stop]
        if not self.fresh[i]:
            frequencies = self.frequencies[start:stop]
            denominator = norm[rows]
            denominator += frequencies
            np.divide(frequencies, denominator, out=self.weights[start:stop])
            self.fresh[i] = True
        return rows, self.weights[start:stop]

    def forget_weights(self) -> None:
        """Drop cached weights (the length norms changed)."""
        self.weights = None
        self.fresh = None

    def term_of_each_posting(self) -> np.ndarray:
        return np.repeat(self.terms, np.diff(self.offsets))


class _SlotTable:
    """Per-document arrays indexed by slot, grown by doubling: chunk id, length, alive flag."""

    def __init__(self) -> None:
        self.count = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._lengths = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self.count]

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths[: self.count]

    @property
    def alive(self) -> np.ndarray:
        return self._alive[: self.count]

    def append(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Store new documents and return their slots."""
        stop = self.count + len(ids)
        if stop > len(self._ids):
            self._grow(max(stop, 2 * len(self._ids)))
        self._ids[self.count : stop] = ids
        self._lengths[self.count : stop] = lengths
        self._alive[self.count : stop] = True
        slots = np.arange(self.count, stop, dtype=np.int64)
        self.count = stop
        return slots

    def _grow(self, capacity: int) -> None:
        for name in ("_ids", "_lengths", "_alive"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: self.count] = old[: self.count]
            setattr(self, name, new)


class Bm25Index:
    """Okapi BM25 index of chunks, identified by int64 chunk ids.

    Scores equal rank-bm25's `BM25Okapi(corpus, k1, b, epsilon).get_scores(query)` over the
    documents currently in the index: idf = log(N - n + 0.5) - log(n + 0.5), negative idfs
    replaced by epsilon times the mean idf of all indexed terms, repeated query terms counted
    each time.

    Parameters:
        tokenizer: turns text into terms at index and query time (default `Bm25Tokenizer()`).
        k1: term frequency saturation, >= 0.
        b: document length normalisation, in [0, 1].
        epsilon: floor for negative idfs, as a fraction of the mean idf.

    Raises:
        ValueError: for k1 < 0 or b outside [0, 1].

    Searching and changing are serialised by a lock; searches may reorganise storage.

    Example:
        >>> index = Bm25Index()
        >>> index.add([1, 2, 3], ["cats purr", "dogs bark loudly", "birds sing"])
        >>> index.search("barking dogs", k=1)[0].chunk_id
        2
    """

    def __init__(
        self,
        tokenizer: Bm25Tokenizer | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}.")
        self.tokenizer = tokenizer or Bm25Tokenizer()
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self._lock = threading.RLock()
        self._vocabulary: dict[str, int] = {}
        self._terms: list[str] = []
        self._df = np.zeros(0, dtype=np.int64)
        self._slots = _SlotTable()
        self._slot_of: dict[int, int] = {}
        self._segments: list[_Segment] = []
        self._total_length = 0
        self._idf: np.ndarray | None = None
        self._mean_idf = 0.0
        self._norm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._slot_of)

    def ids(self) -> np.ndarray:
        """Return the chunk ids in the index, ascending (int64)."""
        with self._lock:
            return np.sort(self._slots.ids[self._slots.alive])

    def add(
        self, ids: Sequence[int] | np.ndarray, documents: Sequence[str | Sequence[str]]
    ) -> None:
        """Index documents; an id already present is replaced.

        Parameters:
            ids: chunk ids, one per document; if an id repeats, its last document wins.
            documents: each a text (tokenised with `self.tokenizer`) or a list of terms.

        Raises:
            ValueError: if ids and documents differ in number or ids are not integers.
        """
        id_array = as_ids(ids)
        if len(id_array) != len(documents):
            raise ValueError(f"Got {len(id_array)} ids for {len(documents)} documents.")
        id_array, keep = last_occurrences(id_array)
        token_lists = [self._tokens(documents[i]) for i in keep]
        with self._lock:
            self._remove_slots(id_array)
            if len(id_array):
                self._segments.append(self._add_blocks(id_array, token_lists))
                self._apply_merge_policy()
            self._invalidate()

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove documents by chunk id and return how many were present."""
        with self._lock:
            removed = self._remove_slots(as_ids(ids))
            self._invalidate()
            return removed

    def search(
        self, query: str | Sequence[str], k: int = 10, idf: Mapping[str, float] | None = None
    ) -> list[Hit]:
        """Return the k best documents for a query, best first (ties: lower id first).

        Parameters:
            query: a text (tokenised with `self.tokenizer`) or a list of terms.
            k: number of hits wanted; fewer come back when fewer documents match.
            idf: the idf of each query term to use instead of this index's own, such as
                `pooled_idf` over several indexes searched together (a term missing from it
                counts 0).

        Only documents that contain a query term and score non-zero are returned.
        """
        tokens = self._tokens(query)
        with self._lock:
            if k <= 0 or not self._slot_of:
                return []
            self._settle()
            return self._top_hits(self._slot_scores(tokens, idf), k)

    def term_statistics(self, query: str | Sequence[str]) -> TermStatistics:
        """Return what `pooled_idf` needs of this index for a query: the number of documents,
        each query term's document frequency and the mean idf of the indexed terms."""
        tokens = self._tokens(query)
        with self._lock:
            if not self._slot_of:
                return TermStatistics(0, dict.fromkeys(tokens, 0), 0.0)
            self._settle()
            frequencies = {
                token: int(self._df[self._vocabulary[token]]) if token in self._vocabulary else 0
                for token in tokens
            }
            return TermStatistics(len(self._slot_of), frequencies, self._mean_idf)

    def scores(
        self, query: str | Sequence[str], ids: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Return the BM25 score of each document for a query.

        Parameters:
            query: a text or a list of terms.
            ids: chunk ids to score, in the order wanted; default `self.ids()`.

        Raises:
            KeyError: if an id is not in the index.
        """
        tokens = self._tokens(query)
        with self._lock:
            if self._slot_of:
                self._settle()  # before looking up slots: it may renumber them
            wanted = self.ids() if ids is None else as_ids(ids)
            slots = np.fromiter((self._slot_of[int(i)] for i in wanted), np.int64, len(wanted))
            if not len(slots):
                return np.zeros(0)
            return self._slot_scores(tokens)[slots]

    def _tokens(self, document: str | Sequence[str]) -> Sequence[str]:
        return self.tokenizer(document) if isinstance(document, str) else document

    # Adding and removing.

    def _add_blocks(self, ids: np.ndarray, token_lists: Sequence[Sequence[str]]) -> _Segment:
        """Index documents block by block, which bounds memory, and return one segment."""
        blocks = []
        for start in range(0, len(ids), _BLOCK_DOCUMENTS):
            stop = start + _BLOCK_DOCUMENTS
            blocks.append(self._add_block(ids[start:stop], token_lists[start:stop]))
        return blocks[0] if len(blocks) == 1 else self._merge(blocks)

    def _add_block(self, ids: np.ndarray, token_lists: Sequence[Sequence[str]]) -> _Segment:
        term_ids = self._term_ids(token_lists)
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        slots = self._slots.append(ids, lengths)
        self._slot_of.update(zip(ids.tolist(), slots.tolist(), strict=True))
        self._total_length += int(lengths.sum())
        rows = np.repeat(slots.astype(np.int32), lengths)
        frequencies = np.ones(len(term_ids), dtype=np.float32)
        segment = _build_segment(
            rows, term_ids, frequencies, int(slots[0]), self._slots.count, len(self._terms)
        )
        self._df[segment.terms] += np.diff(segment.offsets)
        return segment

    def _term_ids(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Map tokens to term ids, giving new terms the next ids."""
        tokens = list(chain.from_iterable(token_lists))
        new_terms = [term for term in dict.fromkeys(tokens) if term not in self._vocabulary]
        first_new = len(self._terms)
        self._vocabulary.update((term, first_new + i) for i, term in enumerate(new_terms))
        self._terms.extend(new_terms)
        missing = len(self._terms) - len(self._df)
        if missing > 0:
            self._df = np.concatenate([self._df, np.zeros(missing, dtype=np.int64)])
        return np.fromiter(map(self._vocabulary.__getitem__, tokens), np.int32, len(tokens))

    def _remove_slots(self, ids: np.ndarray) -> int:
        pop = self._slot_of.pop
        slots = [slot for slot in (pop(i, None) for i in ids.tolist()) if slot is not None]
        if not slots:
            return 0
        slot_array = np.array(slots, dtype=np.int64)
        self._slots.alive[slot_array] = False
        self._total_length -= int(self._slots.lengths[slot_array].sum())
        starts = np.array([segment.first_slot for segment in self._segments])
        owners = np.searchsorted(starts, slot_array, side="right") - 1
        for slot, owner in zip(slots, owners.tolist(), strict=True):
            self._segments[owner].pending_dead.append(slot)
        return len(slots)

    def _account_removals(self, segments: Sequence[_Segment]) -> None:
        """Decrement document frequencies for removed documents not yet accounted for."""
        for segment in segments:
            if not segment.pending_dead:
                continue
            dead = np.zeros(self._slots.count, dtype=bool)
            dead[segment.pending_dead] = True
            positions = np.flatnonzero(dead[segment.rows])
            term_index = np.searchsorted(segment.offsets, positions, side="right") - 1
            self._df[segment.terms] -= np.bincount(term_index, minlength=len(segment.terms))
            segment.pending_dead = []

    def _invalidate(self) -> None:
        self._idf = None
        self._norm = None

    # Segment upkeep.

    def _apply_merge_policy(self) -> None:
        segments = self._segments
        while len(segments) >= 2 and segments[-2].size <= _MERGE_RATIO * segments[-1].size:
            segments[-2:] = [self._merge(segments[-2:])]

    def _merge(self, segments: Sequence[_Segment]) -> _Segment:
        """Merge adjacent segments into one, dropping the postings of removed documents."""
        self._account_removals(segments)
        rows, terms, frequencies = _concatenated_postings(segments, self._slots.alive)
        first, stop = segments[0].first_slot, segments[-1].stop_slot
        return _build_segment(rows, terms, frequencies, first, stop, len(self._terms))

    def _compact(self) -> None:
        """Rewrite everything as one segment: live documents renumbered, unused terms dropped."""
        self._account_removals(self._segments)
        alive = self._slots.alive
        slot_map = np.cumsum(alive) - 1
        used = self._df > 0
        term_map = np.cumsum(used) - 1
        rows, terms, frequencies = _concatenated_postings(self._segments, alive)
        rows, terms = slot_map[rows].astype(np.int32), term_map[terms].astype(np.int32)
        self._terms = [term for term, keep in zip(self._terms, used.tolist(), strict=True) if keep]
        self._vocabulary = {term: i for i, term in enumerate(self._terms)}
        self._df = self._df[used]
        ids, lengths = self._slots.ids[alive], self._slots.lengths[alive]
        self._slots = _SlotTable()
        self._slots.append(ids, lengths)
        self._slot_of = dict(zip(ids.tolist(), range(len(ids)), strict=True))
        segment = _build_segment(rows, terms, frequencies, 0, len(ids), len(self._terms))
        self._segments = [segment] if len(ids) else []
        self._invalidate()

    def _settle(self) -> None:
        """Bring df, idf and length norms up to date before scoring."""
        dead = self._slots.count - len(self._slot_of)
        if dead > _COMPACT_DEAD_FRACTION * self._slots.count:
            self._compact()
        self._account_removals(self._segments)
        if self._idf is None or self._norm is None:
            documents = len(self._slot_of)
            self._idf, self._mean_idf = okapi_idf(self._df, documents, self.epsilon)
            average_length = self._total_length / documents if documents else 0.0
            relative_lengths = self._slots.lengths / (average_length or 1.0)
            self._norm = self.k1 * (1 - self.b + self.b * relative_lengths)
            for segment in self._segments:
                segment.forget_weights()

    # Scoring.

    def _slot_scores(
        self, tokens: Sequence[str], idf: Mapping[str, float] | None = None
    ) -> np.ndarray:
        """Score every slot (dead ones included, callers mask them) for a list of query terms,
        with this index's idf or the one given."""
        assert self._idf is not None and self._norm is not None
        scores = np.zeros(self._slots.count)
        counts = Counter(t for t in tokens if t in self._vocabulary)
        for token, count in counts.items():
            term = self._vocabulary[token]
            weight = self._idf[term] if idf is None else idf.get(token, 0.0)
            factor = np.array([count * weight * (self.k1 + 1)])
            if factor[0] == 0:
                continue
            for segment in self._segments:
                postings = segment.weighted_postings(term, self._norm)
                if postings is not None:
                    _accumulate(scores, *postings, factor)
        return scores

    def _top_hits(self, scores: np.ndarray, k: int) -> list[Hit]:
        candidates = self._candidates(scores, k)
        values = scores[candidates]
        if len(values) > k:
            kth = np.partition(values, len(values) - k)[len(values) - k]
            keep = values >= kth
            candidates, values = candidates[keep], values[keep]
        ids = self._slots.ids[candidates]
        order = np.lexsort((ids, -values))[:k]
        return [Hit(int(i), float(s)) for i, s in zip(ids[order], values[order], strict=True)]

    def _candidates(self, scores: np.ndarray, k: int) -> np.ndarray:
        """Live slots with a non-zero score that may be in the top k."""
        alive = self._slots.alive
        bound = _kth_score_lower_bound(scores, k)
        if bound is not None:
            candidates = np.flatnonzero(scores >= bound)
            candidates = candidates[alive[candidates]]
            if len(candidates) >= k:
                return candidates
        candidates = np.flatnonzero(scores)
        return candidates[alive[candidates]]

    # Persistence.

    def save(self, path: Path) -> None:
        """Write the index into directory `path` (created if missing), files fsynced.

        Writes sparse.npz, sparse.json and sparse-vocabulary.json; publishing the directory
        atomically is the caller's job. Segments are written as they are (no merge), so saving
        costs about as much as writing the files.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._settle()  # decrements df for removed documents, so df is exact on disk
            _write_npz(path / ARRAYS_FILE, self._arrays())
            _write_json(path / VOCABULARY_FILE, self._terms)
            _write_json(path / META_FILE, self._meta())
        fsync_path(path)

    @classmethod
    def load(cls, path: Path) -> Bm25Index:
        """Read an index written by `save`.

        Raises:
            IndexNotBuiltError: if `path` holds no saved BM25 index.
            IndexMismatchError: if the files are of another format version or inconsistent.
        """
        path = Path(path)
        if not (path / META_FILE).is_file():
            raise IndexNotBuiltError(f"There is no BM25 index in {path}; build the index first.")
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            _check_format(meta, path)
            index = cls(
                Bm25Tokenizer.from_dict(meta["tokenizer"]), meta["k1"], meta["b"], meta["epsilon"]
            )
            terms = json.loads((path / VOCABULARY_FILE).read_text(encoding="utf-8"))
            with np.load(path / ARRAYS_FILE, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            index._restore(terms, arrays, meta["segments"])
        except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as error:
            raise IndexMismatchError(
                f"The BM25 index in {path} is damaged or incomplete; rebuild the index."
            ) from error
        return index

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "ids": self._slots.ids,
            "lengths": self._slots.lengths,
            "alive": self._slots.alive,
            "df": self._df,
        }
        for i, segment in enumerate(self._segments):
            arrays.update({f"{name}_{i}": getattr(segment, name) for name in _SEGMENT_ARRAYS})
        return arrays

    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "k1": self.k1,
            "b": self.b,
            "epsilon": self.epsilon,
            "tokenizer": self.tokenizer.to_dict(),
            "documents": len(self),
            "terms": len(self._terms),
            "segments": [[segment.first_slot, segment.stop_slot] for segment in self._segments],
        }

    def _restore(
        self, terms: list[str], arrays: dict[str, np.ndarray], ranges: list[list[int]]
    ) -> None:
        segments = [
            _Segment(
                first,
                stop,
                terms=arrays[f"terms_{i}"],
                offsets=arrays[f"offsets_{i}"],
                rows=arrays[f"rows_{i}"],
                frequencies=arrays[f"frequencies_{i}"],
            )
            for i, (first, stop) in enumerate(ranges)
        ]
        ids, lengths, alive = arrays["ids"], arrays["lengths"], arrays["alive"]
        _check_restored(segments, ids, lengths, alive, arrays["df"], len(terms))
        self._terms = terms
        self._vocabulary = {term: i for i, term in enumerate(terms)}
        self._df = arrays["df"].astype(np.int64)
        self._slots.append(ids.astype(np.int64), lengths.astype(np.int64))
        self._slots.alive[:] = alive
        live = np.flatnonzero(alive)
        self._slot_of = dict(zip(ids[live].tolist(), live.tolist(), strict=True))
        self._total_length = int(lengths[live].sum())
        self._segments = segments


@dataclass(frozen=True)
class TermStatistics:
    """One index's share of a pooled idf: its documents, the document frequency of each query
    term, and the mean (unfloored) idf of its indexed terms."""

    documents: int
    frequencies: dict[str, int]
    mean_idf: float


def okapi_idf(df: np.ndarray, documents: int, epsilon: float) -> tuple[np.ndarray, float]:
    """Return BM25Okapi's idf of each term from its document frequency, and the mean idf.

    idf = log(N - n + 0.5) - log(n + 0.5); terms with a negative idf get epsilon times the mean
    idf of all terms with n > 0; terms with n = 0 get 0 (they match nothing).
    """
    idf = np.zeros(len(df))
    present = df > 0
    if documents == 0 or not present.any():
        return idf, 0.0
    frequencies = df[present].astype(np.float64)
    raw = np.log(documents - frequencies + 0.5) - np.log(frequencies + 0.5)
    mean = float(raw.mean())
    raw[raw < 0] = epsilon * mean
    idf[present] = raw
    return idf, mean


def pooled_idf(indexes: Sequence[Bm25Index], query: str | Sequence[str]) -> dict[str, float]:
    """The idf of each query term over the documents of several indexes taken together.

    Knowledge bases searched together should weigh a term by its rarity in all of them: with
    each base's own idf, a term in every document of a three-document base outranks the
    query's rare terms elsewhere, and BM25 scores of different bases do not compare. N and n are
    summed over the indexes; a negative idf is floored, as in `okapi_idf`, at epsilon times the
    mean idf, here the indexes' mean idfs weighted by their sizes (the mean over the union of
    their vocabularies would need every index's whole vocabulary per query). Each index still
    normalises lengths by its own average document length. With one index, or indexes of
    equal average length and no floored term, scores equal one BM25Okapi over all the documents.
    """
    statistics = [index.term_statistics(query) for index in indexes]
    documents = sum(part.documents for part in statistics)
    if not documents:
        return {}
    frequencies: Counter[str] = Counter()
    for part in statistics:
        frequencies.update(part.frequencies)
    mean = sum(part.documents * part.mean_idf for part in statistics) / documents
    floor = indexes[0].epsilon * mean
    idf = {}
    for term, count in frequencies.items():
        raw = np.log(documents - count + 0.5) - np.log(count + 0.5) if count else 0.0
        idf[term] = float(raw) if raw >= 0 else floor
    return idf


def present_idf(indexes: Sequence[Bm25Index], terms: Sequence[str]) -> dict[str, float]:
    """Lucene's always-positive idf, log(1 + (N - n + 0.5) / (n + 0.5)), of the terms found in
    any of the indexes, over their documents taken together; terms found nowhere are left out.

    For weighing a question's words by rarity (extractive answers): unlike BM25Okapi's idf it
    stays positive in a base of a few documents, where every word is in most of them.
    """
    if not indexes or not terms:
        return {}
    statistics = [index.term_statistics(list(terms)) for index in indexes]
    documents = sum(part.documents for part in statistics)
    result = {}
    for term in dict.fromkeys(terms):
        frequency = sum(part.frequencies.get(term, 0) for part in statistics)
        if frequency:
            result[term] = math.log1p((documents - frequency + 0.5) / (frequency + 0.5))
    return result


def _accumulate(
    scores: np.ndarray, rows: np.ndarray, weights: np.ndarray, factor: np.ndarray
) -> None:
    """scores[rows] += weights * factor, for rows without repeats; factor has one element."""
    if _csc_matvec is None:
        scores[rows] += weights * factor[0]
        return
    column = np.array([0, len(rows)], dtype=rows.dtype)
    _csc_matvec(len(scores), 1, column, rows, weights, factor, scores)


def _kth_score_lower_bound(scores: np.ndarray, k: int) -> float | None:
    """A positive value <= the k-th best score, from a strided sample; None if not useful."""
    step = len(scores) // _SAMPLE_SIZE
    if step < 8 or k > _SAMPLE_SIZE // 8:
        return None
    sample = scores[::step]
    bound = float(np.partition(sample, len(sample) - k)[len(sample) - k])
    return bound if bound > 0 else None


def _build_segment(
    rows: np.ndarray,
    terms: np.ndarray,
    frequencies: np.ndarray,
    first_slot: int,
    stop_slot: int,
    vocabulary_size: int,
) -> _Segment:
    """Group (slot, term, frequency) postings by term, summing repeats of a (slot, term) pair."""
    matrix = scipy.sparse.csc_matrix(
        (frequencies, (rows, terms)), shape=(max(stop_slot, 1), max(vocabulary_size, 1))
    )
    matrix.sum_duplicates()  # also sorts the slots of each term
    present = np.flatnonzero(np.diff(matrix.indptr))
    offsets = np.append(matrix.indptr[present], matrix.nnz).astype(np.int64)
    return _Segment(
        first_slot,
        stop_slot,
        present.astype(np.int32),
        offsets,
        matrix.indices.astype(np.int32, copy=False),
        matrix.data.astype(np.float32, copy=False),
    )


def _concatenated_postings(
    segments: Sequence[_Segment], alive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slots, terms, frequencies) of the live postings of segments, in segment order."""
    rows = _joined([segment.rows for segment in segments], np.int32)
    terms = _joined([segment.term_of_each_posting() for segment in segments], np.int32)
    frequencies = _joined([segment.frequencies for segment in segments], np.float32)
    keep = alive[rows]
    if keep.all():
        return rows, terms, frequencies
    return rows[keep], terms[keep], frequencies[keep]


def _joined(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    """Concatenate, without copying a single array."""
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def _check_format(meta: dict[str, Any], path: Path) -> None:
    if meta.get("format") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"The BM25 index in {path} has format {meta.get('format')}, but this version "
            f"reads format {FORMAT_VERSION}; rebuild the index."
        )


def _check_restored(
    segments: list[_Segment],
    ids: np.ndarray,
    lengths: np.ndarray,
    alive: np.ndarray,
    df: np.ndarray,
    terms: int,
) -> None:
    # Segments must tile the slots: [0, stop_0), [stop_0, stop_1), ... up to the last slot.
    edges = [0, *(edge for seg in segments for edge in (seg.first_slot, seg.stop_slot)), len(ids)]
    consistent = (
        len(lengths) == len(alive) == len(ids)
        and len(df) == terms
        and edges[::2] == edges[1::2]
        and all(_segment_is_consistent(segment, terms) for segment in segments)
    )
    if not consistent:
        raise IndexMismatchError("The saved BM25 index is inconsistent; rebuild the index.")


def _segment_is_consistent(segment: _Segment, terms: int) -> bool:
    offsets, rows = segment.offsets, segment.rows
    return bool(
        segment.first_slot <= segment.stop_slot
        and len(offsets) == len(segment.terms) + 1
        and offsets[0] == 0
        and offsets[-1] == len(rows) == len(segment.frequencies)
        and (len(segment.terms) == 0 or 0 <= segment.terms.min() <= segment.terms.max() < terms)
        and (len(rows) == 0 or segment.first_slot <= rows.min() <= rows.max() < segment.stop_slot)
    )


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
