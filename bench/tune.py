"""Choose our retrieval settings on the development half of the queries, step by step.

Usage: python bench/tune.py --beir ../shared/data/scifact --beir ../shared/data/cmrc2018 [--json]

Each step keeps what the steps before it chose and picks its own setting by the mean nDCG@10 of
the datasets' development halves (`bench.retrieval.is_held_out` is false); the held-out halves
are printed beside them and never used to choose. Steps:

1. baseline: whole documents (truncated by the model), the former default fusion (min-max,
   dense weight 0.5), BM25 k1=1.5, b=0.75;
2. passages: every document cut by the product's chunking, document score = best passage;
3. BM25 title: BM25 holds each passage after its document's title, as the product indexes a
   chunk (retrieval.chunking.sparse_text), or the passage alone;
4. fusion: reciprocal rank fusion, or min-max / z-score normalisation with dense weights
   0.3 to 0.7;
5. BM25: k1 in 0.9, 1.2, 1.5, 2.0 and b in 0.5, 0.75, 0.9;
6. title (with --title): the embedded passages after a document's first also start with its
   title (their vectors are embedded again, so this step costs a corpus embedding).

Vectors come from var/bench-cache as bench/retrieval.py leaves them (or are made and cached).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO_ROOT / "bench":
    sys.path[0] = str(REPO_ROOT)

from bench.retrieval import (  # noqa: E402
    PASSAGE_HITS,
    TOP_K,
    Dataset,
    OurIndexes,
    PassageIndexes,
    build_ours,
    build_passage_indexes,
    default_model,
    documents_by_best_passage,
    is_held_out,
    load_beir,
    log,
)
from retrieval.embedders import SentenceTransformerEmbedder  # noqa: E402
from retrieval.hybrid import HybridRetriever  # noqa: E402
from retrieval.metrics import ndcg_at_k  # noqa: E402
from retrieval.sparse import Bm25Index  # noqa: E402
from retrieval.tokenize import Bm25Tokenizer  # noqa: E402

UNEMBEDDED_SHARE = 0.01  # below this share of embedded queries, tuning embeds nothing


@dataclass(frozen=True)
class Setting:
    """One configuration of our search."""

    unit: str = "document"  # "document" or "passage"
    fusion: str = "weighted"
    normalisation: str = "minmax"
    dense_weight: float = 0.5
    k1: float = 1.5
    b: float = 0.75
    title_in_bm25: bool = False  # BM25 holds each passage after its document's title
    title_every_passage: bool = False  # the embedded passages start with the title too

    def label(self) -> str:
        fusion = "rrf" if self.fusion == "rrf" else f"{self.normalisation} w={self.dense_weight}"
        title = ", title in BM25" if self.title_in_bm25 else ""
        title += ", title on every passage" if self.title_every_passage else ""
        return f"{self.unit}s, {fusion}, k1={self.k1} b={self.b}{title}"


class Unembedded:
    """The embedder for a dataset whose queries are nearly all in a language the model does not
    cover (HybridRetriever then ranks by BM25 alone: CMRC 2018 has one English-looking question
    in 3,219), so that tuning skips embedding its corpus: the same tokenizer and languages, zero
    vectors, cached under a name of their own. The few covered queries rank by BM25 alone too."""

    def __init__(self, embedder: SentenceTransformerEmbedder) -> None:
        self._embedder = embedder
        self.name = f"unembedded-{Path(embedder.name).name}"
        self.dimension, self.max_tokens = embedder.dimension, embedder.max_tokens
        self.languages = embedder.languages
        self.count_tokens, self.split_tokens = embedder.count_tokens, embedder.split_tokens

    def embed(self, texts: list[str], progress: object = None) -> np.ndarray:
        return np.zeros((len(texts), self.dimension), dtype=np.float32)


class Bench:
    """One dataset with its query vectors and the indexes each setting needs (built once)."""

    def __init__(self, dataset: Dataset, embedder: SentenceTransformerEmbedder) -> None:
        self.dataset = dataset
        probe = HybridRetriever(embedder, [])
        covered = sum(probe.dense_weight_for(text) > 0 for text in dataset.queries.values())
        self.embedded = covered >= UNEMBEDDED_SHARE * len(dataset.queries)
        if not self.embedded:
            log(f"{dataset.name}: {covered} queries in the model's languages: BM25 alone")
            embedder = Unembedded(embedder)  # type: ignore[assignment]
        self.embedder = embedder
        texts = list(dataset.queries.values())
        self.query_vectors = dict(zip(dataset.queries, embedder.embed(texts), strict=True))
        self._documents: OurIndexes | None = None
        self._passages: dict[bool, PassageIndexes] = {}
        self._sparse: dict[tuple, Bm25Index] = {}

    def documents(self) -> OurIndexes:
        if self._documents is None:
            self._documents = build_ours(self.dataset, self.embedder)
        return self._documents

    def passages(self, title_every_passage: bool) -> PassageIndexes:
        if title_every_passage not in self._passages:
            built = build_passage_indexes(self.dataset, self.embedder, title_every_passage)
            self._passages[title_every_passage] = built
        return self._passages[title_every_passage]

    def sparse(self, setting: Setting, texts: list[str]) -> Bm25Index:
        key = (
            setting.unit,
            setting.title_every_passage,
            setting.title_in_bm25,
            setting.k1,
            setting.b,
        )
        if key not in self._sparse:
            index = Bm25Index(Bm25Tokenizer(), k1=setting.k1, b=setting.b)
            index.add(np.arange(len(texts)), texts)
            self._sparse[key] = index
        return self._sparse[key]

    def scores(self, setting: Setting) -> dict[str, float]:
        """nDCG@10 of every query under a setting."""
        if setting.unit == "document":
            documents = self.documents()
            texts, dense = documents.texts, documents.dense
            owner, doc_ids, hits = np.arange(len(texts)), documents.doc_ids, TOP_K
        else:
            passages = self.passages(setting.title_every_passage)
            texts, dense = passages.passages.texts, passages.dense
            if setting.title_in_bm25:
                texts = passages.passages.sparse_texts
            owner, doc_ids, hits = passages.passages.owner, passages.passages.doc_ids, PASSAGE_HITS
        retriever = HybridRetriever(
            self.embedder,
            [(dense, self.sparse(setting, texts))],
            depth=hits,
            fusion=setting.fusion,
            dense_weight=setting.dense_weight,
            normalisation=setting.normalisation,
        )
        scores = {}
        for query_id, text in self.dataset.queries.items():
            embedded = self.embedded and retriever.dense_weight_for(text) > 0
            vector = self.query_vectors[query_id] if embedded else None
            found = retriever.search_vector(text, vector, hits)
            ranking = documents_by_best_passage(found, owner, doc_ids)
            scores[query_id] = ndcg_at_k(ranking, self.dataset.qrels[query_id], 10)
        return scores


def summary(scores: dict[str, float]) -> dict[str, float]:
    """Mean nDCG@10 over the development half, the held-out half and all queries."""
    held = [score for query, score in scores.items() if is_held_out(query)]
    dev = [score for query, score in scores.items() if not is_held_out(query)]
    return {
        "dev": float(np.mean(dev)),
        "held_out": float(np.mean(held)),
        "all": float(np.mean(list(scores.values()))),
    }


def choose(benches: list[Bench], candidates: list[Setting]) -> tuple[Setting, list[dict]]:
    """The candidate with the best mean development nDCG@10 over the datasets, and every
    candidate's figures (ties: the earlier candidate)."""
    tried = []
    for setting in candidates:
        figures = {bench.dataset.name: summary(bench.scores(setting)) for bench in benches}
        objective = float(np.mean([figure["dev"] for figure in figures.values()]))
        tried.append({"setting": setting, "objective": objective, "figures": figures})
        log(f"  {setting.label()}: dev {objective:.4f}")
    best = max(tried, key=lambda row: row["objective"])  # max keeps the first of equals
    return best["setting"], tried


def steps(
    benches: list[Bench], title: bool, baseline: bool = True
) -> list[tuple[str, Setting, list[dict]]]:
    """Run the steps in order; each starts from the setting the previous one chose."""
    chosen: list[tuple[str, Setting, list[dict]]] = []
    current = Setting()
    plan: list[tuple[str, list[Setting]]] = [("passages", [replace(current, unit="passage")])]
    if baseline:
        plan.insert(0, ("baseline", [current]))
    for name, candidates in plan:
        log(f"Step {name}")
        current, tried = choose(benches, candidates)
        chosen.append((name, current, tried))
    log("Step BM25 title")
    current, tried = choose(benches, [current, replace(current, title_in_bm25=True)])
    chosen.append(("bm25-title", current, tried))
    log("Step fusion")
    fusions = [replace(current, fusion="rrf")] + [
        replace(current, fusion="weighted", normalisation=norm, dense_weight=weight)
        for norm in ("minmax", "zscore")
        for weight in (0.3, 0.4, 0.5, 0.6, 0.7)
    ]
    current, tried = choose(benches, fusions)
    chosen.append(("fusion", current, tried))
    log("Step BM25")
    grid = [replace(current, k1=k1, b=b) for k1 in (1.5, 0.9, 1.2, 2.0) for b in (0.75, 0.5, 0.9)]
    current, tried = choose(benches, grid)
    chosen.append(("bm25", current, tried))
    if title:
        log("Step title")
        current, tried = choose(benches, [current, replace(current, title_every_passage=True)])
        chosen.append(("title", current, tried))
    return chosen


def print_steps(chosen: list[tuple[str, Setting, list[dict]]]) -> None:
    previous: dict[str, dict[str, float]] = {}
    for name, setting, tried in chosen:
        row = next(row for row in tried if row["setting"] == setting)
        print(f"{name}: {setting.label()} (chosen from {len(tried)} on the dev halves)")
        for dataset, figures in row["figures"].items():
            before = previous.get(dataset)
            gains = "".join(
                f"  {part} {figures[part]:.4f}"
                + (f" ({figures[part] - before[part]:+.4f})" if before else "")
                for part in ("dev", "held_out", "all")
            )
            print(f"    {dataset:<12}{gains}")
        previous = row["figures"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, action="append", required=True)
    parser.add_argument("--model", help="embedding model folder (default: the packaged MiniLM)")
    parser.add_argument("--title", action="store_true", help="also try the title on passages")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="start from passages (whole documents are not embedded; bench/retrieval.py's "
        "doc-hybrid-weighted row is that baseline)",
    )
    options = parser.parse_args(argv)
    embedder = SentenceTransformerEmbedder(options.model or default_model())
    benches = [Bench(load_beir(folder), embedder) for folder in options.beir]
    chosen = steps(benches, options.title, not options.no_baseline)
    if options.json:
        rows = [
            {
                "step": name,
                "setting": vars(setting),
                "tried": [
                    {
                        "setting": vars(row["setting"]),
                        "objective": row["objective"],
                        "figures": row["figures"],
                    }
                    for row in tried
                ],
            }
            for name, setting, tried in chosen
        ]
        print(json.dumps(rows, indent=2))
    else:
        print_steps(chosen)


if __name__ == "__main__":
    main()
