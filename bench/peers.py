"""The retrieval benchmark's peers: LlamaIndex and Haystack 2 hybrid search, as their docs build it.

Used by bench/retrieval.py only; never imported by the product. Their packages are the
`bench-peers` extra (bench/README.md): where one is missing, its systems are left out with a line
on stderr and the benchmark runs on.

- LlamaIndex: Documents cut by its default node parser (SentenceSplitter, 1024 tokens, overlap
  200), a VectorStoreIndex with HuggingFaceEmbedding on the model folder, BM25Retriever from
  llama-index-retrievers-bm25 (bm25s, English stemmer and stop words, as its docs show), both at
  top_k, fused by QueryFusionRetriever(num_queries=1: no query generation) in mode
  "relative_score" and in mode "reciprocal_rerank".
- Haystack 2: Documents cut by DocumentSplitter(split_by="word", split_length=512) as its hybrid
  retrieval tutorial does, an InMemoryDocumentStore, SentenceTransformers embedders on the model
  folder, InMemoryBM25Retriever and InMemoryEmbeddingRetriever at top_k joined by DocumentJoiner
  with join_mode "distribution_based_rank_fusion" or "reciprocal_rank_fusion", in a Pipeline.

A peer's chunk hits become documents by their best chunk (fused lists are sorted best first, so
a document's first chunk in the list is its best). A chunk whose text is one we embedded already
(a whole document or one of our passages) takes our vector instead of being embedded again; the
note of each system gives the smallest cosine between the peer's own vectors and ours on a few
of those texts, which shows whether they are the same vectors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

# Model folders are loaded from disk; nothing may be downloaded.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Ranker = Callable[[str], list[str]]
Peer = tuple[Ranker, float, str]  # ranker, build seconds, note
Log = Callable[[str], None]
AGREEMENT_TEXTS = 8  # texts embedded by the peer itself to compare its vectors with ours
INSTALL_HINT = "install the bench-peers extra: see bench/README.md"


def peer_systems(
    documents: dict[str, str],
    model: str,
    vectors: dict[str, np.ndarray],
    embed_s: float,
    options: argparse.Namespace,
    log: Log,
    top_k: int = 100,
) -> dict[str, Peer]:
    """LlamaIndex's and Haystack's systems, each skipped with a line on stderr when its packages
    are missing. embed_s (the time our corpus embedding took) is added to their build times,
    since they reuse those vectors."""
    peers: dict[str, Peer] = {}
    builders = (
        ("LlamaIndex", "skip_llamaindex", llamaindex_systems),
        ("Haystack", "skip_haystack", haystack_systems),
    )
    for label, skip, build in builders:
        if getattr(options, skip, False):
            continue
        try:
            built = build(documents, model, vectors, top_k, log)
        except ImportError as error:
            log(f"Skipping {label}: {error} ({INSTALL_HINT})")
            continue
        for name, (ranker, build_s, note) in built.items():
            peers[name] = (ranker, embed_s + build_s, note)
    return peers


def first_by_document(doc_ids: list[str], top_k: int) -> list[str]:
    """Document ids in order of their first (best) chunk, duplicates dropped, cut to top_k."""
    return list(dict.fromkeys(doc_ids))[:top_k]


def reuse_vectors(
    texts: list[str], known: dict[str, np.ndarray], embed: Callable[[list[str]], np.ndarray]
) -> tuple[list[np.ndarray], int, float]:
    """Vectors for texts: ours where the text is known, the peer's own embedding elsewhere.

    Returns the vectors, how many were embedded by the peer, and the smallest cosine between
    the peer's vectors and ours on a few known texts (1.0 means the same vectors).
    """
    missing = [text for text in dict.fromkeys(texts) if text not in known]
    own = dict(zip(missing, embed(missing), strict=True)) if missing else {}
    sample = [text for text in dict.fromkeys(texts) if text in known][:AGREEMENT_TEXTS]
    agreement = 1.0
    if sample:
        theirs = np.asarray(embed(sample), dtype=np.float32)
        theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
        ours = np.stack([known[text] for text in sample])
        agreement = float(np.min(np.sum(theirs * ours, axis=1)))
    result = [known[text] if text in known else np.asarray(own[text]) for text in texts]
    return result, len(missing), agreement


def reuse_note(chunks: int, embedded: int, agreement: float) -> str:
    return (
        f"{chunks:,} chunks, {chunks - embedded:,} with our vectors (min cosine of its own to "
        f"ours {agreement:.4f}), {embedded:,} embedded by it"
    )


# --- LlamaIndex ----------------------------------------------------------------------------------

LLAMAINDEX_MODES = {
    "llamaindex-relative-score": "relative_score",
    "llamaindex-rrf": "reciprocal_rerank",
}


def llamaindex_systems(
    documents: dict[str, str], model: str, known: dict[str, np.ndarray], top_k: int, log: Log
) -> dict[str, Peer]:
    """VectorStoreIndex + BM25Retriever fused by QueryFusionRetriever, in both fusion modes."""
    import time

    import Stemmer
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    log("Building LlamaIndex's VectorStoreIndex and BM25Retriever")
    with contextlib.redirect_stdout(sys.stderr):  # it prints "Using MockLLM." on stdout
        Settings.llm = None  # no LLM: num_queries=1 generates no queries (LlamaIndex's MockLLM)
    embed_model = HuggingFaceEmbedding(model_name=model)
    Settings.embed_model = embed_model
    start = time.perf_counter()
    nodes = SentenceSplitter(chunk_size=1024, chunk_overlap=200).get_nodes_from_documents(
        [Document(text=text, id_=doc_id) for doc_id, text in documents.items()]
    )
    texts = [node.get_content() for node in nodes]
    split_s = time.perf_counter() - start

    def embed(batch: list[str]) -> np.ndarray:
        return np.asarray(embed_model.get_text_embedding_batch(batch), dtype=np.float32)

    vectors, embedded, agreement = reuse_vectors(texts, known, embed)
    for node, vector in zip(nodes, vectors, strict=True):
        node.embedding = vector.tolist()
    start = time.perf_counter()
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    dense = index.as_retriever(similarity_top_k=top_k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sparse = BM25Retriever.from_defaults(
            nodes=nodes,
            similarity_top_k=top_k,
            stemmer=Stemmer.Stemmer("english"),
            language="english",
        )
    index_s = split_s + time.perf_counter() - start
    note = reuse_note(len(nodes), embedded, agreement)
    systems: dict[str, Peer] = {}
    for name, mode in LLAMAINDEX_MODES.items():
        fusion = QueryFusionRetriever(
            [dense, sparse],
            similarity_top_k=top_k,
            num_queries=1,  # "set this to 1 to disable query generation"
            mode=mode,
            use_async=False,
        )
        systems[name] = (_llamaindex_ranker(fusion, top_k), index_s, note)
    return systems


def _llamaindex_ranker(fusion: Any, top_k: int) -> Ranker:
    def ranked(query: str) -> list[str]:
        return first_by_document([hit.node.ref_doc_id for hit in fusion.retrieve(query)], top_k)

    return ranked


# --- Haystack 2 ----------------------------------------------------------------------------------

HAYSTACK_MODES = {
    "haystack-dbrf": "distribution_based_rank_fusion",
    "haystack-rrf": "reciprocal_rank_fusion",
}


def haystack_systems(
    documents: dict[str, str], model: str, known: dict[str, np.ndarray], top_k: int, log: Log
) -> dict[str, Peer]:
    """InMemoryBM25Retriever + InMemoryEmbeddingRetriever + DocumentJoiner, in both fusions."""
    import time

    from haystack import Document, Pipeline
    from haystack.components.embedders import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    log("Building Haystack's InMemoryDocumentStore")
    start = time.perf_counter()
    splitter = DocumentSplitter(split_by="word", split_length=512)
    if hasattr(splitter, "warm_up"):
        splitter.warm_up()
    originals = [
        Document(content=text, meta={"doc_id": doc_id}) for doc_id, text in documents.items()
    ]
    chunks = splitter.run(documents=originals)["documents"]
    split_s = time.perf_counter() - start
    document_embedder = SentenceTransformersDocumentEmbedder(model=model, progress_bar=False)
    document_embedder.warm_up()

    def embed(batch: list[str]) -> np.ndarray:
        embedded = document_embedder.run(documents=[Document(content=text) for text in batch])
        return np.asarray([doc.embedding for doc in embedded["documents"]], dtype=np.float32)

    texts = [chunk.content or "" for chunk in chunks]
    vectors, embedded, agreement = reuse_vectors(texts, known, embed)
    for chunk, vector in zip(chunks, vectors, strict=True):
        chunk.embedding = vector.tolist()
    start = time.perf_counter()
    store = InMemoryDocumentStore()
    store.write_documents(chunks)
    index_s = split_s + time.perf_counter() - start
    note = reuse_note(len(chunks), embedded, agreement)
    systems: dict[str, Peer] = {}
    for name, mode in HAYSTACK_MODES.items():
        pipeline = Pipeline()
        pipeline.add_component(
            "text_embedder", SentenceTransformersTextEmbedder(model=model, progress_bar=False)
        )
        pipeline.add_component(
            "embedding_retriever", InMemoryEmbeddingRetriever(store, top_k=top_k)
        )
        pipeline.add_component("bm25_retriever", InMemoryBM25Retriever(store, top_k=top_k))
        pipeline.add_component("document_joiner", DocumentJoiner(join_mode=mode))
        pipeline.connect("text_embedder", "embedding_retriever")
        pipeline.connect("bm25_retriever", "document_joiner")
        pipeline.connect("embedding_retriever", "document_joiner")
        pipeline.warm_up()
        systems[name] = (_haystack_ranker(pipeline, top_k), index_s, note)
    return systems


def _haystack_ranker(pipeline: Any, top_k: int) -> Ranker:
    def ranked(query: str) -> list[str]:
        inputs = {"text_embedder": {"text": query}, "bm25_retriever": {"query": query}}
        found = pipeline.run(inputs)["document_joiner"]["documents"]
        return first_by_document([doc.meta["doc_id"] for doc in found], top_k)

    return ranked
