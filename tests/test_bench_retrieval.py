"""bench/retrieval.py's own logic: passages, documents by their best passage, the query split,
and the peers' chunk-to-document mapping (no peer package needed)."""

import numpy as np
import pytest
from django.conf import settings

from bench import peers
from bench import retrieval as bench
from retrieval.embedders import HashingEmbedder
from retrieval.hybrid import HybridRetriever
from retrieval.types import Hit


def test_a_document_ranks_by_its_best_passage():
    owner = np.array([0, 0, 1, 2, 2])  # passages 0-1 of document a, 2 of b, 3-4 of c
    hits = [Hit(4, 0.9), Hit(2, 0.8), Hit(0, 0.7), Hit(3, 0.6), Hit(1, 0.95)]
    ranked = bench.documents_by_best_passage(hits, owner, ["a", "b", "c"])
    assert ranked == ["a", "c", "b"]  # a's best passage (0.95) comes last in hits
    assert bench.documents_by_best_passage(hits, owner, ["a", "b", "c"], k=2) == ["a", "c"]


def test_equal_best_scores_keep_the_order_of_the_hits():
    owner = np.array([0, 1, 2])
    hits = [Hit(2, 0.5), Hit(0, 0.5), Hit(1, 0.4)]
    assert bench.documents_by_best_passage(hits, owner, ["a", "b", "c"]) == ["c", "a", "b"]


def test_the_query_split_is_fixed_and_halves_the_queries():
    queries = {f"q{number}": f"question {number}" for number in range(400)}
    qrels = {query: {"d1": 1} for query in queries}
    dataset = bench.Dataset("toy", {"d1": "text"}, queries, qrels, 1, len(queries))
    dev, held = bench.query_split(dataset, "dev"), bench.query_split(dataset, "held-out")
    assert set(dev.queries).isdisjoint(held.queries)
    assert set(dev.queries) | set(held.queries) == set(queries)
    assert 150 < len(held.queries) < 250
    assert set(held.qrels) == set(held.queries)
    assert all(bench.is_held_out(query) for query in held.queries)
    assert bench.query_split(dataset, "all") is dataset
    with pytest.raises(ValueError):
        bench.query_split(dataset, "test")


def toy_dataset() -> bench.Dataset:
    long_body = " ".join(f"Sentence {number} about topic {number % 7}." for number in range(120))
    titles = {"long": "Hydrogen storage", "short": "Vaccines"}
    bodies = {"long": long_body, "short": "Measles vaccines protect children."}
    documents = {doc_id: f"{titles[doc_id]} {bodies[doc_id]}" for doc_id in titles}
    queries = {"q1": "measles vaccines", "q2": "topic 3"}
    qrels = {"q1": {"short": 1}, "q2": {"long": 1}}
    return bench.Dataset("toy", documents, queries, qrels, 2, 2, titles, bodies)


def test_long_documents_become_passages_of_the_product_chunk_size():
    embedder = HashingEmbedder()
    passages = bench.passages_of(toy_dataset(), embedder, chunk_tokens=60, overlap_tokens=10)
    owners = [passages.doc_ids[index] for index in passages.owner]
    assert owners.count("short") == 1
    assert owners.count("long") > 5
    assert max(embedder.count_tokens(passages.texts)) <= 60
    first, *rest = [text for text, doc in zip(passages.texts, owners, strict=True) if doc == "long"]
    assert first.startswith("Hydrogen storage")
    assert not any(text.startswith("Hydrogen storage") for text in rest)
    titled = bench.passages_of(toy_dataset(), embedder, 60, 10, title_every_passage=True)
    assert all(text.startswith("Hydrogen storage") for text in titled.texts[: len(owners) - 1])


def test_the_passage_system_ranks_documents(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "CACHE_DIR", tmp_path)
    dataset = toy_dataset()
    embedder = HashingEmbedder()
    indexes = bench.build_passage_indexes(dataset, embedder)
    system = bench.passage_system(embedder, indexes)
    assert system.ranker("measles vaccines")[0] == "short"
    ranked = system.ranker("topic 3 sentence")
    assert ranked == ["long", "short"] or ranked == ["long"]
    assert list(tmp_path.iterdir())  # the passage vectors were cached there


def test_the_bench_default_is_the_product_default():
    assert settings.RAG_CHUNK_TOKENS == bench.PRODUCT_CHUNK_TOKENS
    assert settings.RAG_CHUNK_OVERLAP == bench.PRODUCT_CHUNK_OVERLAP
    assert settings.RAG_FUSION == bench.PRODUCT_FUSION
    assert settings.RAG_FUSION_DENSE_WEIGHT == bench.PRODUCT_DENSE_WEIGHT
    assert HybridRetriever(HashingEmbedder(), []).normalisation == bench.PRODUCT_NORMALISATION


def test_peer_chunks_map_to_documents_by_their_first_and_best_chunk():
    assert peers.first_by_document(["b", "a", "b", "c", "a"], 2) == ["b", "a"]


def test_peers_reuse_our_vectors_for_identical_texts():
    known = {"alpha": np.array([1.0, 0.0], dtype=np.float32)}
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.array([[1.0, 0.0] if text == "alpha" else [0.0, 2.0] for text in texts])

    vectors, embedded, agreement = peers.reuse_vectors(["alpha", "beta", "beta"], known, embed)
    assert embedded == 1
    assert calls[0] == ["beta"]
    assert agreement == pytest.approx(1.0)
    assert vectors[0] is known["alpha"]
    assert vectors[1].tolist() == [0.0, 2.0]
