"""Rerankers: a tiny cross-encoder built here from a config, the window reranker, none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from retrieval.embedders import HashingEmbedder
from retrieval.errors import RetrievalError
from retrieval.rerank import Candidate, CrossEncoderReranker, NoReranker, WindowReranker
from retrieval.types import Hit

TEXTS = {
    1: "parental leave is sixteen weeks at full pay",
    2: "laptops are replaced every three years",
    3: "expenses need a receipt within thirty days",
    4: "sick leave needs a doctor note",
}
QUERY = "how many weeks of parental leave"
CANDIDATES = [Candidate(chunk_id, text, 1.0 / chunk_id) for chunk_id, text in TEXTS.items()]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A random-weight BERT cross-encoder with a WordPiece vocabulary of the test's words."""
    folder = tmp_path_factory.mktemp("cross-encoder")
    words = sorted({word for text in [*TEXTS.values(), QUERY] for word in text.split()})
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join(special + words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(special) + len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
        initializer_range=0.5,  # large random weights, so that texts get clearly distinct scores
    )
    torch.manual_seed(3)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference_scores(folder: Path, query: str, texts: list[str]) -> np.ndarray:
    """The model's scores computed with transformers directly: sigmoid of the single logit."""
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder).eval()
    encoded = tokenizer([query] * len(texts), texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return torch.sigmoid(model(**encoded).logits[:, 0]).numpy()


@pytest.mark.slow  # loads sentence-transformers and a model: seconds on a busy CPU
def test_the_cross_encoder_scores_pairs_as_the_model_does(tiny_cross_encoder) -> None:
    reranker = CrossEncoderReranker(str(tiny_cross_encoder), batch_size=2)
    texts = list(TEXTS.values())
    expected = reference_scores(tiny_cross_encoder, QUERY, texts)
    assert np.ptp(expected) > 1e-3  # the texts do get different scores
    np.testing.assert_allclose(reranker.scores(QUERY, texts), expected, atol=1e-5)


@pytest.mark.slow  # loads sentence-transformers and a model: seconds on a busy CPU
def test_the_cross_encoder_orders_candidates_by_its_scores(tiny_cross_encoder) -> None:
    reranker = CrossEncoderReranker(str(tiny_cross_encoder))
    scores = reference_scores(tiny_cross_encoder, QUERY, [*TEXTS.values()])
    expected = dict(zip(TEXTS, scores, strict=True))
    hits = reranker.rerank(QUERY, CANDIDATES, k=3)
    assert len(hits) == 3
    assert [hit.score for hit in hits] == pytest.approx([expected[h.chunk_id] for h in hits])
    assert hits[0].score == pytest.approx(max(expected.values()))
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert reranker.rerank(QUERY, [], k=3) == []


def test_a_missing_cross_encoder_fails_with_its_name(tmp_path) -> None:
    with pytest.raises(RetrievalError, match="no-such-model"):
        CrossEncoderReranker(str(tmp_path / "no-such-model"))


def test_no_reranker_keeps_the_fused_order() -> None:
    assert NoReranker().rerank(QUERY, CANDIDATES, k=2) == [Hit(1, 1.0), Hit(2, 0.5)]


def test_the_window_reranker_cuts_long_texts_into_overlapping_windows() -> None:
    reranker = WindowReranker(HashingEmbedder(dimension=64), window=16, stride=8)
    text = " ".join(f"word{i}" for i in range(40))
    windows = reranker.window_texts(text)
    assert windows[0] == " ".join(f"word{i}" for i in range(16))
    assert windows[1].startswith("word8 ") and windows[-1].endswith("word39")
    assert reranker.window_texts("short text") == ["short text"]


def test_the_window_reranker_finds_a_match_deep_in_a_long_text() -> None:
    embedder = HashingEmbedder(dimension=256)
    filler = " ".join(f"filler{i}" for i in range(60))
    long_text = f"{filler} parental leave is sixteen weeks"
    candidates = [Candidate(9, "laptops are replaced every three years", 0.9)] + [
        Candidate(5, long_text, 0.1)
    ]
    reranker = WindowReranker(embedder, window=16, stride=8, weight=2.0)
    assert [hit.chunk_id for hit in reranker.rerank("parental leave weeks", candidates, 2)] == [
        5,
        9,
    ]
    with_no_weight = WindowReranker(embedder, window=16, stride=8, weight=0.0)
    assert with_no_weight.rerank("parental leave weeks", candidates, 2)[0].chunk_id == 9


def test_the_window_reranker_embeds_a_text_once() -> None:
    class Counting(HashingEmbedder):
        texts = 0

        def embed(self, texts, progress=None):
            Counting.texts += len(texts)
            return super().embed(texts, progress)

    reranker = WindowReranker(Counting(dimension=64), window=16, stride=8)
    reranker.rerank(QUERY, CANDIDATES, k=4)
    first = Counting.texts
    reranker.rerank(QUERY, CANDIDATES, k=4)
    assert Counting.texts == first + 1  # only the query again


def test_the_window_reranker_rejects_a_window_longer_than_the_model_reads() -> None:
    with pytest.raises(ValueError, match="window"):
        WindowReranker(HashingEmbedder(dimension=64, max_tokens=100), window=200)
