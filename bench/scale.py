"""Index build time, memory and query latency on generated corpora of 100k and 1M chunks.

Usage: python bench/scale.py [--sizes 100000,1000000] [--json] [--queries N] [--sample N]
                             [--model PATH] [--backend onnx-int8|onnx|torch] [--threads N]
                             [--skip-langchain] [--hnsw-max N] [--deltas N]

Each corpus is generated: texts of 70-210 words drawn from a Zipf vocabulary of 50,000 made-up
words (word i has probability proportional to 1 / (i + 1)), and 384-dimensional unit vectors
scattered around 1,024 random centres (embeddings of topical text cluster the same way).
Queries are 3-8 Zipf words with a vector near a random chunk's. Systems, per size:

- sparse: our Bm25Index (default tokenizer) over the texts;
- dense-exact: our FaissIndex kept exact (flat inner product);
- dense-ann: our FaissIndex past its ANN threshold (IVF, lists ~ 4 sqrt(n), 32 probes), with
  its recall@10 against dense-exact on the same query vectors;
- hnsw: FAISS IndexHNSWFlat (M=32, efConstruction 40, efSearch 128), the alternative ANN
  structure, with its recall@10 (built up to --hnsw-max chunks; it cannot remove vectors);
- hybrid: our HybridRetriever over dense-ann and sparse, weighted fusion, 100 candidates per
  list, the query embedded by the real model in every call (reranking excluded), on the
  product's default embedding backend (--backend, default onnx-int8: RAG_EMBEDDING_BACKEND);
- hybrid-before-deltas, hybrid-after-deltas: the same retriever over an unchanged copy of the
  indexes and over the indexes once --deltas documents of 10 chunks have been added one by one
  (every 7th also deleting a chunk), each as an index delta applied to the indexes held, which
  is what a web process does with the versions that workers publish (build column: the seconds
  spent applying them all). The two take turns query by query, so that the machine's load falls
  on both alike; timed on a second pass, warm; the first pass, in which BM25 weighs each query
  term again after the change, is in their notes;
- rank-bm25: BM25Okapi over the same words (what LangChain's BM25Retriever runs);
- langchain-ensemble: BM25Retriever + FAISS vector store (built from the same vectors with
  FAISS.from_embeddings) + HuggingFaceEmbeddings for the query + EnsembleRetriever 0.5/0.5.

rank-bm25 and the LangChain ensemble scan every document in Python for each query, so they
answer a sample of the queries (--sample) and are left out above 100k chunks (rank-bm25 alone
took 12.6 GB at 1M, see ../shared/BASELINES.md); the output says so. Memory is the growth of
the process's resident set while building (after garbage collection). Latency is per query,
one at a time. Progress goes to stderr; --json prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO_ROOT / "bench":
    sys.path[0] = str(REPO_ROOT)  # bench/ first on sys.path would shadow the packages

from bench.retrieval import default_model, langchain_classes  # noqa: E402
from retrieval.deltas import IndexDelta  # noqa: E402
from retrieval.dense import FaissIndex, inverted_lists_for  # noqa: E402
from retrieval.embedders import OnnxEmbedder, SentenceTransformerEmbedder  # noqa: E402
from retrieval.hybrid import HybridRetriever  # noqa: E402
from retrieval.sparse import Bm25Index  # noqa: E402
from retrieval.store import IndexPair  # noqa: E402

DIMENSION = 384
VOCABULARY = 50_000
CENTRES = 1024
TOP_K = 10
SLOW_LIMIT = 100_000  # rank-bm25 and LangChain are left out above this many chunks
EXACT_SAMPLE_ABOVE = 300_000  # exact search answers a sample of queries above this size


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb() -> float:
    """Resident set size of this process in MB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- Generated data ------------------------------------------------------------------------------


def made_up_words(count: int) -> np.ndarray:
    """Distinct lower-case words (base-26 numbers: baa, bab, ...) that our BM25 tokenizer keeps
    as they are (no stemming, no stop words), so texts and their word lists index alike."""
    tokenizer, words, number = Bm25Index().tokenizer, [], 26 * 26
    while len(words) < count:
        letters, value = [], number
        while value:
            value, digit = divmod(value, 26)
            letters.append(chr(ord("a") + digit))
        word = "".join(reversed(letters))
        if tokenizer(word) == [word]:
            words.append(word)
        number += 1
    return np.array(words, dtype=object)


@dataclass
class Corpus:
    texts: list[str]
    vectors: np.ndarray
    query_texts: list[str]
    query_vectors: np.ndarray


def generated_corpus(size: int, queries: int, seed: int = 42) -> Corpus:
    """Zipf texts and clustered unit vectors for `size` chunks, and `queries` queries."""
    rng = np.random.default_rng(seed)
    words = made_up_words(VOCABULARY)
    probabilities = 1.0 / np.arange(1, VOCABULARY + 1)
    probabilities /= probabilities.sum()
    texts = []
    for start in range(0, size, 50_000):
        block = min(50_000, size - start)
        lengths = rng.integers(70, 211, block)
        drawn = rng.choice(VOCABULARY, size=int(lengths.sum()), p=probabilities)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        texts += [" ".join(words[drawn[a:b]]) for a, b in zip(bounds, bounds[1:], strict=False)]
    centres = rng.normal(size=(CENTRES, DIMENSION)).astype(np.float32)
    vectors = np.empty((size, DIMENSION), dtype=np.float32)
    for start in range(0, size, 100_000):
        stop = min(start + 100_000, size)
        chosen = centres[rng.integers(0, CENTRES, stop - start)]
        vectors[start:stop] = chosen + 0.8 * rng.normal(size=chosen.shape).astype(np.float32)
    faiss.normalize_L2(vectors)
    query_texts = [
        " ".join(words[rng.choice(VOCABULARY, size=rng.integers(3, 9), p=probabilities)])
        for _ in range(queries)
    ]
    near = vectors[rng.integers(0, size, queries)]
    noise = rng.normal(size=near.shape) * (0.3 / np.sqrt(DIMENSION))
    query_vectors = (near + noise).astype(np.float32)
    faiss.normalize_L2(query_vectors)
    return Corpus(texts, vectors, query_texts, query_vectors)


# --- Measuring -----------------------------------------------------------------------------------


@dataclass
class Result:
    build_s: float
    memory_mb: float
    p50_ms: float
    p95_ms: float
    queries: int
    recall_at_10: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            key: round(value, 4) if isinstance(value, float) else value
            for key, value in vars(self).items()
        }
        row["notes"] = "; ".join(self.notes)
        return row


def built(build: Callable[[], Any]) -> tuple[Any, float, float]:
    """Build something; return it, the seconds taken and the RSS growth in MB."""
    gc.collect()
    before, start = rss_mb(), time.perf_counter()
    thing = build()
    seconds = time.perf_counter() - start
    gc.collect()
    return thing, seconds, rss_mb() - before


def latencies(search: Callable[[int], Any], count: int) -> tuple[list[float], list[Any]]:
    """Run search(i) for i < count, one at a time (two untimed first); times in ms, results.

    FAISS searches with one thread here: for a single query its OpenMP threads only wait on
    the embedding model's threads, which made each query many times slower.
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for i in range(min(2, count)):
            search(i)
        times, results = [], []
        for i in range(count):
            start = time.perf_counter()
            results.append(search(i))
            times.append((time.perf_counter() - start) * 1000)
    finally:
        faiss.omp_set_num_threads(threads)
    return times, results


def result(build_s: float, memory: float, times: list[float], **extra: Any) -> Result:
    p50, p95 = np.percentile(times, [50, 95])
    return Result(build_s, memory, float(p50), float(p95), len(times), **extra)


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean share of the exact top 10 that an approximate search also returned."""
    pairs = zip(found, truth, strict=False)
    return float(np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in pairs]))


# --- Systems -------------------------------------------------------------------------------------


def measure_size(size: int, options: argparse.Namespace, embedder: Any) -> dict[str, Result]:
    """Every system on one generated corpus; each row is also logged as soon as it is known."""
    results = LoggedResults(size)
    measure_systems(size, options, embedder, results)
    return dict(results)


class LoggedResults(dict):
    """Results by system that log each row to stderr when it is stored."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, name: str, row: Result) -> None:
        super().__setitem__(name, row)
        log(f"[{self.size:,}] {name}: {json.dumps(row.as_dict())}")


def measure_systems(
    size: int, options: argparse.Namespace, embedder: Any, results: dict[str, Result]
) -> None:
    """Measure every system into results."""
    log(f"[{size:,}] generating the corpus")
    corpus = generated_corpus(size, options.queries)
    sparse, seconds, memory = built(lambda: bm25_index(corpus))
    times, _ = latencies(lambda i: sparse.search(corpus.query_texts[i], TOP_K), options.queries)
    results["sparse"] = result(seconds, memory, times)
    if size > SLOW_LIMIT:
        results["sparse"].notes.append("built from word lists: Python tokenising left out")
        results["sparse"] = results["sparse"]  # log again with the note
    log(f"[{size:,}] sparse: built in {seconds:.0f} s, p95 {results['sparse'].p95_ms:.1f} ms")
    results["dense-exact"], truth = measure_exact(corpus, options)
    rows = measure_ann_and_hybrid(corpus, truth, sparse, embedder, options.deltas)
    for name, row in rows.items():
        results[name] = row  # one at a time, so that each is logged
    log(f"[{size:,}] dense-ann: recall@10 {results['dense-ann'].recall_at_10:.3f}")
    if size <= options.hnsw_max:
        results["hnsw"] = measure_hnsw(corpus, truth)
    else:
        log(f"[{size:,}] hnsw left out above --hnsw-max {options.hnsw_max:,}")
    if size > SLOW_LIMIT:
        log(f"[{size:,}] rank-bm25 and LangChain left out: above {SLOW_LIMIT:,} chunks")
        return
    if not options.skip_rank_bm25:
        results["rank-bm25"] = measure_rank_bm25(corpus, options.sample)
    if not options.skip_langchain:
        results["langchain-ensemble"] = measure_langchain(corpus, options)


def measure_exact(corpus: Corpus, options: argparse.Namespace) -> tuple[Result, list[list[int]]]:
    """Exact dense search, and its top 10 per query (the truth for recall)."""
    exact, seconds, memory = built(lambda: dense_index(corpus, threshold=0))
    size = len(corpus.texts)
    count = options.queries if size <= EXACT_SAMPLE_ABOVE else min(options.queries, 50)
    times, hits = latencies(lambda i: exact.search(corpus.query_vectors[i], TOP_K), count)
    outcome = result(seconds, memory, times, recall_at_10=1.0)
    if count < options.queries:
        outcome.notes.append(f"{count} sampled queries (a full scan each)")
    return outcome, [[hit.chunk_id for hit in row] for row in hits]


def measure_ann_and_hybrid(
    corpus: Corpus, truth: list[list[int]], sparse: Bm25Index, embedder: Any, deltas: int
) -> dict[str, Result]:
    """Our dense index past its ANN threshold, the hybrid retriever over it and BM25, and the
    hybrid retriever again after deltas small documents were applied to both indexes."""
    ann, seconds, memory = built(lambda: dense_index(corpus, threshold=1))
    count = len(corpus.query_texts)
    times, hits = latencies(lambda i: ann.search(corpus.query_vectors[i], TOP_K), count)
    found = [[hit.chunk_id for hit in row] for row in hits[: len(truth)]]
    dense = result(seconds, memory, times, recall_at_10=recall(found, truth))
    dense.notes.append(
        f"IVF {inverted_lists_for(len(corpus.texts))} lists, {ann.probes} probes "
        "(our FaissIndex past its threshold)"
    )
    retriever = HybridRetriever(embedder, [(ann, sparse)], depth=100, fusion="weighted")
    times, _ = latencies(lambda i: retriever.search(corpus.query_texts[i], TOP_K), count)
    hybrid = result(0.0, 0.0, times)
    hybrid.notes.append(
        f"query embedded by the model ({embedder.name}) in every call; build: see sparse, dense-ann"
    )
    rows = {"dense-ann": dense, "hybrid": hybrid}
    if deltas:
        rows.update(measure_after_deltas(corpus, ann, sparse, embedder, deltas))
    return rows


def measure_after_deltas(
    corpus: Corpus, ann: FaissIndex, sparse: Bm25Index, embedder: Any, deltas: int
) -> dict[str, Result]:
    """The hybrid retriever over an unchanged copy of the indexes and over the indexes after
    `deltas` small documents, their queries interleaved so that the machine's load falls on
    both alike. Rows from the second pass (warm); the first pass, in which BM25 weighs each
    query term again after the change (and the copy is freshly loaded), is in the note."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("RAG_DATA_DIR")) as folder:
        sparse.save(Path(folder) / "sparse")
        ann.save(Path(folder) / "dense")
        copy = (FaissIndex.load(Path(folder) / "dense"), Bm25Index.load(Path(folder) / "sparse"))
    applied_s = apply_deltas(corpus, IndexPair(ann, sparse), deltas)
    retrievers = [
        HybridRetriever(embedder, [pair], depth=100, fusion="weighted")
        for pair in (copy, (ann, sparse))
    ]
    count = len(corpus.query_texts)
    first = interleaved_latencies(retrievers, corpus.query_texts, count)
    warm = interleaved_latencies(retrievers, corpus.query_texts, count)
    rows = {}
    for name, times, cold in zip(("before", "after"), warm, first, strict=True):
        row = rows[f"hybrid-{name}-deltas"] = result(0.0, 0.0, times)
        p50, p95 = np.percentile(cold, [50, 95])
        row.notes.append(f"first pass: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    rows["hybrid-before-deltas"].notes.insert(0, "an unchanged copy, interleaved with the next")
    rows["hybrid-after-deltas"].build_s = applied_s
    rows["hybrid-after-deltas"].notes.insert(
        0,
        f"after {deltas} documents of 10 chunks applied one by one as deltas (build column: "
        f"{applied_s:.1f} s applying them)",
    )
    return rows


def interleaved_latencies(
    retrievers: list[HybridRetriever], queries: list[str], count: int
) -> list[list[float]]:
    """Each query through each retriever in turn (two untimed first); ms per retriever."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # as latencies() does
    times: list[list[float]] = [[] for _ in retrievers]
    try:
        for i in range(min(2, count)):
            for retriever in retrievers:
                retriever.search(queries[i], TOP_K)
        for i in range(count):
            for j, retriever in enumerate(retrievers):
                start = time.perf_counter()
                retriever.search(queries[i], TOP_K)
                times[j].append((time.perf_counter() - start) * 1000)
    finally:
        faiss.omp_set_num_threads(threads)
    return times


def apply_deltas(corpus: Corpus, pair: IndexPair, deltas: int) -> float:
    """Add deltas documents of 10 new chunks to pair one by one, each an IndexDelta as a
    publish writes it (every 7th also deletes a chunk of the corpus); the seconds taken."""
    extra = generated_corpus(10 * deltas, 1, seed=7)
    size = len(corpus.texts)
    start = time.perf_counter()
    for number in range(deltas):
        rows = slice(10 * number, 10 * number + 10)
        ids = np.arange(size + rows.start, size + rows.stop)
        deleted = [number] if number % 7 == 6 else []
        IndexDelta.of(ids, extra.vectors[rows], extra.texts[rows], deleted).apply(pair)
    return time.perf_counter() - start


def bm25_index(corpus: Corpus) -> Bm25Index:
    """Our BM25 index over the texts; above SLOW_LIMIT over their word lists (the tokenizer
    would keep them as they are), since tokenising in Python dominates a 1M build."""
    index = Bm25Index()
    ids = np.arange(len(corpus.texts))
    if len(corpus.texts) > SLOW_LIMIT:
        index.add(ids, [text.split() for text in corpus.texts])
    else:
        index.add(ids, corpus.texts)
    index.search("warm up", 1)  # settles the segments, as the first real query would
    return index


def dense_index(corpus: Corpus, threshold: int) -> FaissIndex:
    index = FaissIndex(DIMENSION, ann_threshold=threshold)
    index.add(np.arange(len(corpus.vectors)), corpus.vectors)
    return index


def measure_hnsw(corpus: Corpus, truth: list[list[int]]) -> Result:
    def build() -> Any:
        index = faiss.IndexHNSWFlat(DIMENSION, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.add(corpus.vectors)
        index.hnsw.efSearch = 128
        return index

    index, seconds, memory = built(build)
    vectors = corpus.query_vectors
    times, rows = latencies(lambda i: index.search(vectors[i : i + 1], TOP_K)[1][0], len(vectors))
    found = [row.tolist() for row in rows[: len(truth)]]
    outcome = result(seconds, memory, times, recall_at_10=recall(found, truth))
    outcome.notes.append("FAISS HNSW M=32, efConstruction 40, efSearch 128; cannot remove ids")
    return outcome


def measure_rank_bm25(corpus: Corpus, sample: int) -> Result:
    from rank_bm25 import BM25Okapi

    model, seconds, memory = built(lambda: BM25Okapi([text.split() for text in corpus.texts]))

    def search(i: int) -> Any:
        scores = model.get_scores(corpus.query_texts[i].split())
        return np.argpartition(-scores, TOP_K)[:TOP_K]

    times, _ = latencies(search, min(sample, len(corpus.query_texts)))
    outcome = result(seconds, memory, times)
    outcome.notes.append(f"{len(times)} sampled queries (each scores every document in Python)")
    return outcome


def measure_langchain(corpus: Corpus, options: argparse.Namespace) -> Result:
    bm25_class, faiss_class, embeddings_class, ensemble_class = langchain_classes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embeddings = embeddings_class(model_name=options.model)
    embeddings.embed_query("warm up")
    pairs = list(zip(corpus.texts, corpus.vectors.tolist(), strict=True))

    def build() -> Any:
        bm25 = bm25_class.from_texts(corpus.texts, k=TOP_K)
        store = faiss_class.from_embeddings(pairs, embeddings)
        dense = store.as_retriever(search_kwargs={"k": TOP_K})
        return ensemble_class(retrievers=[bm25, dense], weights=[0.5, 0.5])

    ensemble, seconds, memory = built(build)
    count = min(options.sample, len(corpus.query_texts))
    times, _ = latencies(lambda i: ensemble.invoke(corpus.query_texts[i]), count)
    outcome = result(seconds, memory, times)
    outcome.notes.append(
        f"{count} sampled queries; FAISS store from the same vectors (FAISS.from_embeddings)"
    )
    return outcome


# --- Output --------------------------------------------------------------------------------------


def goals(results: dict[int, dict[str, Result]]) -> dict[str, Any]:
    """The issue's goals, checked against this run's figures."""
    summary: dict[str, Any] = {}
    if 1_000_000 in results:
        p95 = results[1_000_000]["hybrid"].p95_ms
        summary["hybrid_p95_ms_at_1m"] = round(p95, 2)
        summary["hybrid_p95_under_100ms_at_1m"] = p95 < 100
    if 100_000 in results and "langchain-ensemble" in results[100_000]:
        row = results[100_000]
        ratio = row["langchain-ensemble"].p95_ms / row["hybrid"].p95_ms
        summary["langchain_over_hybrid_p95_at_100k"] = round(ratio, 1)
        summary["at_least_20x_faster_at_100k"] = ratio >= 20
    for size, rows in results.items():
        if "hybrid-after-deltas" in rows:
            after, before = rows["hybrid-after-deltas"], rows["hybrid-before-deltas"]
            summary[f"hybrid_p50_after_over_before_deltas_at_{size}"] = round(
                after.p50_ms / before.p50_ms, 2
            )
            summary[f"hybrid_p95_after_over_before_deltas_at_{size}"] = round(
                after.p95_ms / before.p95_ms, 2
            )
    return summary


def print_table(facts: dict[str, Any], results: dict[int, dict[str, Result]]) -> None:
    print(
        f"Generated corpora: Zipf texts over {VOCABULARY:,} words, {DIMENSION}-d clustered unit "
        f"vectors; {facts['queries']} queries; top {TOP_K}; {facts['cpus']} CPUs, "
        f"FAISS threads {facts['faiss_threads']} to build, 1 to query; our query embedding "
        f"{facts['embedding_backend']} with {facts['embedding_threads']} thread(s). The CPU may "
        "be shared: compare within a run."
    )
    header = ("system", "build s", "memory MB", "p50 ms", "p95 ms", "queries", "recall@10")
    for size, rows in results.items():
        print(f"\n{size:,} chunks")
        print("{:<20}{:>10}{:>11}{:>10}{:>10}{:>9}{:>11}".format(*header))
        for name, row in rows.items():
            recall_text = "" if row.recall_at_10 is None else f"{row.recall_at_10:.3f}"
            print(
                f"{name:<20}{row.build_s:>10.1f}{row.memory_mb:>11.0f}{row.p50_ms:>10.2f}"
                f"{row.p95_ms:>10.2f}{row.queries:>9}{recall_text:>11}"
            )
        for name, row in rows.items():
            if row.notes:
                print(f"  {name}: {'; '.join(row.notes)}")
        if size > SLOW_LIMIT:
            print(
                f"  rank-bm25 and langchain-ensemble: left out above {SLOW_LIMIT:,} chunks "
                "(rank-bm25 alone needed 12.6 GB and 3.7 s per query at 1M, BASELINES.md)"
            )
    print()
    for key, value in goals(results).items():
        print(f"{key}: {value}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated chunk counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per system")
    parser.add_argument("--sample", type=int, default=20, help="queries for the slow systems")
    parser.add_argument("--model", help="query embedding model folder (default: packaged MiniLM)")
    parser.add_argument("--skip-langchain", action="store_true")
    parser.add_argument("--skip-rank-bm25", action="store_true")
    parser.add_argument(
        "--backend",
        choices=("onnx-int8", "onnx", "torch"),
        default=os.environ.get("RAG_EMBEDDING_BACKEND", "onnx-int8"),
        help="our query embedding backend (default: RAG_EMBEDDING_BACKEND, else onnx-int8)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of our query embedding model"
    )
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest size for HNSW")
    parser.add_argument(
        "--deltas", type=int, default=500, help="documents added as deltas before hybrid again"
    )
    options = parser.parse_args(argv)
    options.sizes = [int(size) for size in options.sizes.split(",") if size.strip()]
    options.model = options.model or default_model()
    return options


def query_embedder(options: argparse.Namespace) -> Any:
    """Our query embedder as the product builds it: ONNX models are exported once into
    RAG_DATA_DIR/models (var/models by default), shared with the application."""
    if options.backend == "torch":
        return SentenceTransformerEmbedder(options.model, threads=options.threads)
    data_dir = Path(os.environ.get("RAG_DATA_DIR", REPO_ROOT / "var"))
    return OnnxEmbedder(
        options.model,
        data_dir / "models",
        quantize=options.backend == "onnx-int8",
        threads=options.threads,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    embedder = query_embedder(options)
    if embedder.dimension != DIMENSION:
        raise SystemExit(f"The model gives {embedder.dimension}-d vectors; {DIMENSION} needed.")
    embedder.embed(["warm up"])
    results = {size: measure_size(size, options, embedder) for size in options.sizes}
    facts = {
        "queries": options.queries,
        "sample": options.sample,
        "cpus": os.cpu_count(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "embedding_backend": options.backend,
        "embedding_threads": options.threads,
        "model": options.model,
    }
    if options.json:
        rows = {
            str(size): {name: row.as_dict() for name, row in by_system.items()}
            for size, by_system in results.items()
        }
        print(json.dumps({"run": facts, "sizes": rows, "goals": goals(results)}, indent=2))
    else:
        print_table(facts, results)


if __name__ == "__main__":
    main()
