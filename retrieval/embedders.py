"""Embedding models behind one small protocol: a sentence-transformers model, and a hashing
embedder that needs no weights (fast tests, and a fallback that is still a real embedder)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import RetrievalError

ProgressCallback = Callable[[int, int], None]


class Embedder(Protocol):
    """What chunking, indexing and search need of an embedding model."""

    name: str
    dimension: int
    max_tokens: int

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def embed(
        self, texts: Sequence[str], progress: ProgressCallback | None = None
    ) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model; vectors are float32 and L2-normalised.

    model: a local folder (loaded offline) or a model name. max_tokens is the model's maximum
    sequence length less the two special tokens, so a chunk of max_tokens is never truncated.

    >>> embedder = SentenceTransformerEmbedder("/path/to/all-MiniLM-L6-v2")
    >>> embedder.embed(["hello"]).shape
    (1, 384)
    """

    def __init__(
        self, model: str, batch_size: int = 32, device: str = "cpu", threads: int = 0
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if threads:
            import torch

            torch.set_num_threads(threads)
        local = Path(model).is_dir()
        try:
            self._model = SentenceTransformer(model, device=device, local_files_only=local)
        except OSError as error:
            raise RetrievalError(f"The embedding model {model!r} could not be loaded.") from error
        self.name = model
        self.batch_size = batch_size
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length) - 2
        self._tokenizer = self._model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def split_tokens(self, text: str, size: int) -> list[str]:
        """Cut text into pieces of at most size tokens at token boundaries (for run-on text)."""
        encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        pieces = []
        for start in range(0, len(offsets), size):
            window = offsets[start : start + size]
            pieces.append(text[window[0][0] : window[-1][1]])
        return pieces

    def embed(self, texts: Sequence[str], progress: ProgressCallback | None = None) -> np.ndarray:
        """Embed texts in batches; progress(done, total) is called every couple of batches.

        Texts are embedded longest first across the whole call, so each batch holds texts of
        similar length and little time goes into padding; the result keeps the input order.
        """
        total = len(texts)
        vectors = np.zeros((total, self.dimension), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        step = self.batch_size * 2
        for start in range(0, total, step):
            rows = order[start : start + step]
            vectors[rows] = self._model.encode(
                [texts[row] for row in rows],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress:
                progress(min(start + step, total), total)
        return vectors


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """A deterministic embedder with no weights: words and word pairs hashed into buckets.

    Lexical rather than semantic, but a real implementation of the protocol: tests use it where
    the model's speed would dominate, and it documents what an embedder must provide.
    """

    def __init__(self, dimension: int = 256, max_tokens: int = 254) -> None:
        self.name = f"hashing-{dimension}"
        self.dimension = dimension
        self.max_tokens = max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(text)) for text in texts]

    def split_tokens(self, text: str, size: int) -> list[str]:
        spans = [match.span() for match in _WORD.finditer(text)]
        return [
            text[spans[start][0] : spans[min(start + size, len(spans)) - 1][1]]
            for start in range(0, len(spans), size)
        ]

    def embed(self, texts: Sequence[str], progress: ProgressCallback | None = None) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [word.lower() for word in _WORD.findall(text)]
            for feature in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                vectors[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms == 0, 1.0, norms)
        if progress:
            progress(len(texts), len(texts))
        return vectors
