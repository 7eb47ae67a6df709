"""Index work to make one new document searchable, by delta publish against a full rewrite.

Usage: python bench/update.py [--sizes 10000,100000,1000000] [--json] [--repeats N]
                              [--deltas N] [--queries N]

For each size a base of that many generated chunks (bench/scale.py's corpus: Zipf texts, 384-d
clustered vectors) is indexed as the product indexes it (FaissIndex with the default ANN
threshold of 50,000, Bm25Index) and published as version 1. Then, with the retrieval library
directly (embedding excluded), one document of 10 chunks at a time:

- ours_s: IndexStore.publish_delta, the writer's whole index work for the document (a new
  version that links the previous files and writes the delta); median of --repeats documents;
- reload_s: IndexStore.update, a web process that holds the previous version picking up the new
  one (applying the delta to its loaded indexes); median, and the first query after it;
- full_rewrite_s: today's path measured in the same run: IndexStore.load of the current version,
  add the 10 chunks, IndexStore.publish of a complete new version (once);
- full_reload_s: a web process loading that complete version (today's pick-up, once).

FAISS builds the base with all its threads and does the timed work with one, as bench/scale.py
times its queries.

Then --deltas more documents go in one by one as deltas (with IndexStore.merge whenever the
manifest asks for one, as the merge task does), and the held indexes' query latency (BM25 and
dense, p50 over --queries queries, one at a time, after an untimed pass) is given before and
after, with the merge times. Files go to a temporary folder under RAG_DATA_DIR (or the system's
temporary folder). Progress goes to stderr; --json prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO_ROOT / "bench":
    sys.path[0] = str(REPO_ROOT)  # bench/ first on sys.path would shadow the packages

from bench.scale import DIMENSION, Corpus, generated_corpus, log  # noqa: E402
from retrieval.deltas import IndexDelta  # noqa: E402
from retrieval.dense import FaissIndex  # noqa: E402
from retrieval.sparse import Bm25Index  # noqa: E402
from retrieval.store import IndexPair, IndexStore  # noqa: E402

ANN_THRESHOLD = 50_000  # the product's default RAG_ANN_THRESHOLD
CHUNKS_PER_DOCUMENT = 10
KB = 1


def built_pair(texts: list[str], vectors: np.ndarray) -> IndexPair:
    """The base, its BM25 side built from word lists as bench/scale.py does at scale (the
    made-up words are ones our tokenizer keeps unchanged): tokenising 140M words in Python
    would dominate the build and is not what is measured. Deltas are tokenised as usual."""
    pair = IndexPair(FaissIndex(DIMENSION, ann_threshold=ANN_THRESHOLD), Bm25Index())
    for start in range(0, len(texts), 50_000):
        stop = min(start + 50_000, len(texts))
        ids = np.arange(start + 1, stop + 1)
        pair.dense.add(ids, vectors[start:stop])
        pair.sparse.add(ids, [text.split() for text in texts[start:stop]])
    return pair


def document_delta(corpus: Corpus, first: int) -> IndexDelta:
    """The delta adding corpus chunks first..first + 9 as ids first + 1..first + 10."""
    rows = np.arange(first, first + CHUNKS_PER_DOCUMENT)
    return IndexDelta.of(rows + 1, corpus.vectors[rows], [corpus.texts[i] for i in rows])


def query_p50_ms(pair: IndexPair, query_texts: list[str], query_vectors: np.ndarray) -> dict:
    """p50 of BM25 and dense search over the queries, once warm: a first untimed pass fills
    BM25's per-term weight cache, which every change to the index empties."""
    for text, vector in zip(query_texts, query_vectors, strict=True):
        pair.sparse.search(text, 10)
        pair.dense.search(vector, 10)
    times: dict[str, list[float]] = {"sparse": [], "dense": []}
    for text, vector in zip(query_texts, query_vectors, strict=True):
        start = time.perf_counter()
        pair.sparse.search(text, 10)
        middle = time.perf_counter()
        pair.dense.search(vector, 10)
        times["sparse"].append((middle - start) * 1000)
        times["dense"].append((time.perf_counter() - middle) * 1000)
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


def measure_size(size: int, options: argparse.Namespace, folder: Path) -> dict[str, Any]:
    threads = faiss.omp_get_max_threads()
    try:
        return measured_size(size, options, folder)
    finally:
        faiss.omp_set_num_threads(threads)


def measured_size(size: int, options: argparse.Namespace, folder: Path) -> dict[str, Any]:
    documents = options.repeats + 1 + options.deltas
    log(f"{size:,} chunks: generating the corpus")
    corpus = generated_corpus(size + CHUNKS_PER_DOCUMENT * documents, options.queries)
    log(f"{size:,} chunks: indexing")
    reader = built_pair(corpus.texts[:size], corpus.vectors[:size])
    store = IndexStore(folder / f"size-{size}")
    store.publish(KB, 1, reader)  # the held pair is now version 1 of a web process
    new_documents = [
        document_delta(corpus, first)
        for first in range(size, size + CHUNKS_PER_DOCUMENT * documents, CHUNKS_PER_DOCUMENT)
    ]
    query_texts, query_vectors = corpus.query_texts, corpus.query_vectors
    del corpus
    faiss.omp_set_num_threads(1)  # timed work runs on one FAISS thread, as bench/scale.py queries
    before = query_p50_ms(reader, query_texts, query_vectors)
    row: dict[str, Any] = {"chunks": size}
    version, publish_times, reload_times, first_query = 1, [], [], []
    log(f"{size:,} chunks: delta publishes")
    for delta in new_documents[: options.repeats]:
        start = time.perf_counter()
        store.publish_delta(KB, version + 1, version, delta)
        publish_times.append(time.perf_counter() - start)
        version += 1
        start = time.perf_counter()
        reader = store.update(KB, version, reader)
        reload_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        reader.sparse.search(query_texts[0], 10)
        reader.dense.search(query_vectors[0], 10)
        first_query.append((time.perf_counter() - start) * 1000)
        store.prune(KB, version)
    row["ours_s"] = round(statistics.median(publish_times), 4)
    row["reload_s"] = round(statistics.median(reload_times), 4)
    row["first_query_ms"] = round(statistics.median(first_query), 2)
    row.update(full_rewrite(store, version, new_documents[options.repeats]))
    version += 1
    log(f"{size:,} chunks: {options.deltas} more documents as deltas, merging when asked")
    reader = store.load(KB, version)
    merges = []
    for delta in new_documents[options.repeats + 1 :]:
        store.publish_delta(KB, version + 1, version, delta)
        version += 1
        if store.manifest(KB, version).needs_merge():
            start = time.perf_counter()
            store.merge(KB, version, version + 1)
            merges.append(time.perf_counter() - start)
            version += 1
        reader = store.update(KB, version, reader)
        store.prune(KB, version)
    row["deltas_held"] = len(store.manifest(KB, version).deltas)
    row["merges"] = len(merges)
    row["merge_s_max"] = round(max(merges), 3) if merges else 0.0
    row["query_p50_ms_before"] = before
    row["query_p50_ms_after"] = query_p50_ms(reader, query_texts, query_vectors)
    shutil.rmtree(store.root, ignore_errors=True)
    log(f"{size:,} chunks: {json.dumps(row)}")
    return row


def full_rewrite(store: IndexStore, version: int, delta: IndexDelta) -> dict[str, float]:
    """Today's path: load the whole version, add the document, write a whole new version;
    then a web process loads that version whole."""
    start = time.perf_counter()
    pair = store.load(KB, version)
    pair.dense.add(delta.ids, delta.vectors)
    pair.sparse.add(delta.ids, list(delta.texts))
    store.publish(KB, version + 1, pair)
    rewrite = time.perf_counter() - start
    del pair
    start = time.perf_counter()
    store.load(KB, version + 1)
    reload = time.perf_counter() - start
    store.prune(KB, version + 1)
    return {"full_rewrite_s": round(rewrite, 3), "full_reload_s": round(reload, 3)}


def print_table(facts: dict[str, Any], rows: dict[int, dict[str, Any]]) -> None:
    print(
        f"One {CHUNKS_PER_DOCUMENT}-chunk document made searchable (index work only, embedding "
        f"excluded); {facts['cpus']} CPUs, load average before {facts['load_average']}. "
        "The CPU may be shared: compare within a run."
    )
    header = ("chunks", "ours s", "reload s", "full rewrite s", "full reload s", "1st query ms")
    print("{:>10}{:>10}{:>10}{:>16}{:>15}{:>14}".format(*header))
    for size, row in rows.items():
        print(
            f"{size:>10,}{row['ours_s']:>10.4f}{row['reload_s']:>10.4f}"
            f"{row['full_rewrite_s']:>16.3f}{row['full_reload_s']:>15.3f}"
            f"{row['first_query_ms']:>14.2f}"
        )
    print(f"\nQuery p50 (ms) of the held indexes before and after {facts['deltas']} deltas:")
    for size, row in rows.items():
        before, after = row["query_p50_ms_before"], row["query_p50_ms_after"]
        print(
            f"{size:>10,}  bm25 {before['sparse']:.2f} -> {after['sparse']:.2f}, "
            f"dense {before['dense']:.2f} -> {after['dense']:.2f}; "
            f"{row['merges']} merges (longest {row['merge_s_max']:.2f} s), "
            f"{row['deltas_held']} deltas held"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--repeats", type=int, default=5, help="timed delta publishes per size")
    parser.add_argument("--deltas", type=int, default=100, help="documents added after, as deltas")
    parser.add_argument("--queries", type=int, default=100, help="queries for the latency check")
    options = parser.parse_args(argv)
    options.sizes = [int(size) for size in options.sizes.split(",") if size.strip()]
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    facts = {
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "faiss_threads": faiss.omp_get_max_threads(),
        "repeats": options.repeats,
        "deltas": options.deltas,
    }
    parent = os.environ.get("RAG_DATA_DIR") or None
    with tempfile.TemporaryDirectory(prefix="bench-update-", dir=parent) as folder:
        rows = {size: measure_size(size, options, Path(folder)) for size in options.sizes}
    facts["load_average_after"] = round(os.getloadavg()[0], 2)
    if options.json:
        print(json.dumps({"run": facts, "sizes": {str(k): v for k, v in rows.items()}}, indent=2))
    else:
        print_table(facts, rows)


if __name__ == "__main__":
    main()
