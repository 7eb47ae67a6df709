"""The evaluation run behind `manage.py evaluate`: every question of a dataset goes through
answering.answer_question (the path the chat uses), then retrieval, faithfulness, citation and
correctness metrics are computed per question and aggregated into report.json and report.html.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from generation.faithfulness import (
    Judge,
    abstains,
    citation_quality,
    embedding_similarity,
    faithfulness,
    rouge_l,
    states_reference,
    token_f1,
)
from retrieval.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from retrieval.text import fold

from . import answering, components, search, serializers
from .models import KnowledgeBase

logger = logging.getLogger(__name__)

RANKING_DEPTH = 10  # nDCG@10 and MRR@10, as BEIR reports them
# A retrieved chunk matches a reference context when this share of the 40-character pieces of
# the shorter of the two occurs in the other (both reduced to lower-case letters and digits):
# reference contexts were extracted with other tools, so their spacing and hyphenation differ
# from ours, and they may be longer than a chunk (a page) or shorter (a sentence).
CONTEXT_MATCH_SHARE = 0.5
_SHINGLE = 40


class EvaluationError(Exception):
    """The evaluation cannot run: a bad dataset, an unknown knowledge base, no judge."""


@dataclass
class EvaluationQuestion:
    """One line of an evaluation dataset (JSON lines; see DESIGN.md)."""

    id: str
    question: str
    reference_answer: str | None = None
    # Short accepted answers (CMRC 2018 has up to three annotators'), for "reference stated";
    # reference_answer is the first of them when they are given.
    reference_answers: list[str] = field(default_factory=list)
    reference_contexts: list[str] = field(default_factory=list)
    relevant_doc_ids: list[int] = field(default_factory=list)


def load_dataset(path: Path, limit: int | None = None) -> list[EvaluationQuestion]:
    """Read a JSON-lines dataset; raises EvaluationError naming the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationError(f"Cannot read the dataset {path}: {error}") from None
    questions = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            questions.append(_parse_question(line, f"{path}:{number}"))
        if limit and len(questions) >= limit:
            break
    if not questions:
        raise EvaluationError(f"The dataset {path} holds no questions.")
    return questions


def _parse_question(line: str, where: str) -> EvaluationQuestion:
    try:
        row = json.loads(line)
        question = str(row["question"]).strip()
        if not question:
            raise ValueError("the question is empty")
        return EvaluationQuestion(
            id=str(row.get("id", where.rsplit(":", 1)[1])),
            question=question,
            reference_answer=row.get("reference_answer") or None,
            reference_answers=[str(a) for a in row.get("reference_answers") or [] if str(a)],
            reference_contexts=[str(c) for c in row.get("reference_contexts") or []],
            relevant_doc_ids=[int(i) for i in row.get("relevant_doc_ids") or []],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        reason = "no question" if isinstance(error, KeyError) else error
        raise EvaluationError(f"{where}: not a dataset row ({reason}).") from None


@dataclass
class EvaluationRun:
    """What to evaluate and how; run() returns the report as a dict."""

    knowledge_base: KnowledgeBase
    questions: list[EvaluationQuestion]
    judge: Judge
    top_k: int | None = None
    dataset: str = ""
    progress: Callable[[int, int], None] | None = None

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        rows = []
        for done, question in enumerate(self.questions, start=1):
            rows.append(self.evaluate_question(question))
            if self.progress:
                self.progress(done, len(self.questions))
        return {
            "settings": self._settings(time.perf_counter() - started),
            "judges": self._judges(),
            "aggregates": aggregate(rows),
            "questions": rows,
        }

    def evaluate_question(self, item: EvaluationQuestion) -> dict[str, Any]:
        """Answer one question and score it; a failure is recorded on the row, not raised."""
        row: dict[str, Any] = {"id": item.id, "question": item.question}
        try:
            answer = answering.answer_question(
                item.question, [self.knowledge_base], top_k=self.top_k
            )
        except Exception as error:  # one broken question must not end the run
            logger.exception("Question %s failed", item.id)
            row["error"] = f"{type(error).__name__}: {error}"
            return row
        row.update(_answer_fields(answer), reference_answer=item.reference_answer)
        row["retrieval"], ranking_ms = self._retrieval(item)
        judged = time.perf_counter()
        texts = [passage.text for passage in answer.passages]
        row["faithfulness"] = _faithfulness_row(answer.text, texts, self.judge, item)
        row["citations"] = _citation_row(answer.text, texts, self.judge)
        cited = [citation.document_id for citation in answer.citations]
        row["correctness"] = _correctness_row(answer.text, item, cited)
        row["latency_ms"] = asdict(answer.timings)
        row["latency_ms"]["ranking_ms"] = ranking_ms
        row["latency_ms"]["judge_ms"] = round((time.perf_counter() - judged) * 1000)
        return row

    def _retrieval(self, item: EvaluationQuestion) -> tuple[dict | None, int | None]:
        """Ranking metrics over the same search the answer used, RANKING_DEPTH deep."""
        if not item.relevant_doc_ids and not item.reference_contexts:
            return None, None
        k = self.top_k or settings.RAG_ANSWER_TOP_K
        started = time.perf_counter()
        passages = search.search_passages(
            [self.knowledge_base], item.question, max(k, RANKING_DEPTH)
        )
        elapsed = round((time.perf_counter() - started) * 1000)
        return retrieval_scores(passages, item, k), elapsed

    def _settings(self, seconds: float) -> dict[str, Any]:
        return {
            "knowledge_base": self.knowledge_base.name,
            "dataset": self.dataset,
            "questions": len(self.questions),
            "top_k": self.top_k or settings.RAG_ANSWER_TOP_K,
            "embedding_model": components.get_embedder().name,
            "llm_model": settings.RAG_LLM_MODEL if settings.RAG_LLM_BASE_URL else None,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(seconds, 1),
        }

    def _judges(self) -> dict[str, str]:
        model = getattr(self.judge, "model", None) or settings.RAG_LLM_MODEL
        judge = f"llm ({model})" if self.judge.name == "llm" else self.judge.name
        return {
            "faithfulness": judge,
            "citation_recall": judge,
            "citation_precision": judge,
            "embedding_similarity": components.get_embedder().name,
            "token_f1": "SQuAD token F1, Chinese by character (no judge)",
            "reference_stated": "a reference answer contained in the answer (no judge)",
            "own_context_cited": "a relevant document cited (no judge)",
            "rouge_l": "rouge-score ROUGE-L F (no judge)",
            "retrieval": "relevant_doc_ids or reference_contexts (no judge)",
        }


def _answer_fields(answer: answering.Answer) -> dict[str, Any]:
    """The answer in a report row, its citations and passages as the REST API gives them."""
    return {
        "answer": answer.text,
        "mode": answer.mode,
        "notice": answer.notice,
        "citations_given": serializers.citations_body(answer.citations),
        "invalid_citations": list(answer.invalid_citations),
        "passages": serializers.NumberedPassageSerializer(answer.passages, many=True).data,
    }


def _faithfulness_row(answer: str, texts: list[str], judge: Judge, item) -> dict[str, Any]:
    result = faithfulness(answer, texts, judge, question=item.question)
    return {
        "score": result.score,
        "support": round(result.support, 4),
        "judge": result.judge,
        "claims": [
            {"claim": v.statement, "supported": v.supported, "score": round(v.score, 4)}
            | {"reason": v.reason}
            for v in result.verdicts
        ],
    }


def _citation_row(answer: str, texts: list[str], judge: Judge) -> dict[str, Any]:
    result = citation_quality(answer, texts, judge)
    return {
        "recall": result.recall,
        "precision": result.precision,
        "judge": result.judge,
        "sentences": result.sentences,
    }


def _correctness_row(answer: str, item: EvaluationQuestion, cited_documents=()) -> dict | None:
    """Answer scores against the references: token F1, ROUGE-L and embedding similarity with
    the reference answer; whether the answer states one of the reference answers; whether it
    cites one of the question's relevant documents (its own context)."""
    row: dict[str, Any] = {}
    if item.relevant_doc_ids:
        row["own_context_cited"] = float(bool(set(cited_documents) & set(item.relevant_doc_ids)))
    reference = item.reference_answer
    if not reference:
        return row or None
    if item.reference_answers:  # short spans (CMRC): is one of them stated word for word?
        row["reference_stated"] = float(states_reference(answer, item.reference_answers))
    return row | {
        "token_f1": max(token_f1(answer, ref) for ref in item.reference_answers or [reference]),
        "rouge_l": rouge_l(answer, reference),
        "embedding_similarity": embedding_similarity(
            answer, reference, components.get_embedder().embed
        ),
    }


# --- Retrieval ----------------------------------------------------------------------------------


def retrieval_scores(passages, item: EvaluationQuestion, k: int) -> dict[str, Any]:
    """recall@k, MRR@10 and nDCG@10 (retrieval.metrics, BEIR's definitions) of the passages,
    judged by the question's relevant documents, or else by its reference contexts.

    With document ids, the ranking is the passages' documents, each at the rank of its best
    passage. With reference contexts, a passage that matches reference context i stands for i
    (again at its best rank), and any other passage for itself.
    """
    if item.relevant_doc_ids:
        ranking = _first_occurrences(p.document_id for p in passages)
        relevance: dict[int | str, float] = {doc_id: 1.0 for doc_id in item.relevant_doc_ids}
        source = "relevant_doc_ids"
    else:
        references = [_shingles(text) for text in item.reference_contexts]
        ranking = _first_occurrences(_context_label(p, references) for p in passages)
        relevance = {f"reference-{i}": 1.0 for i in range(len(references))}
        source = "reference_contexts"
    return {
        f"recall@{k}": recall_at_k(ranking, relevance, k),
        "mrr@10": mrr_at_k(ranking, relevance, RANKING_DEPTH),
        "ndcg@10": ndcg_at_k(ranking, relevance, RANKING_DEPTH),
        "judged_by": source,
        "ranking": ranking[:RANKING_DEPTH],
    }


def _first_occurrences(items: Iterable) -> list:
    return list(dict.fromkeys(items))


def _context_label(passage, references: list[set[str]]) -> str:
    pieces = _shingles(passage.text)
    for number, reference in enumerate(references):
        shared = len(pieces & reference)
        smaller = min(len(pieces), len(reference))
        if smaller and shared >= CONTEXT_MATCH_SHARE * smaller:
            return f"reference-{number}"
    return f"chunk-{passage.chunk_id}"


def _shingles(text: str) -> set[str]:
    letters = "".join(re.findall(r"[^\W_]+", fold(text).lower()))
    if len(letters) <= _SHINGLE:
        return {letters} if letters else set()
    return {letters[i : i + _SHINGLE] for i in range(0, len(letters) - _SHINGLE + 1)}


# --- Aggregates ---------------------------------------------------------------------------------


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the questions where each metric is defined (with their count), answer modes,
    "not found" answers (no claims: they have no faithfulness or citation scores), failures, and
    latency percentiles per stage."""
    answered = [row for row in rows if "error" not in row]
    result: dict[str, Any] = {
        "questions": len(rows),
        "failed": len(rows) - len(answered),
        "modes": dict(sorted(Counter(row["mode"] for row in answered).items())),
        "not_found": sum(abstains(row["answer"]) for row in answered),
    }
    for section, metrics in _metric_names(answered).items():
        result[section] = {
            metric: _mean([(row.get(section) or {}).get(metric) for row in answered])
            for metric in metrics
        }
    result["latency_ms"] = _latency(answered)
    return result


def _metric_names(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {
        "retrieval": [],
        "faithfulness": ["score"],
        "citations": ["recall", "precision"],
        "correctness": [
            "reference_stated",
            "own_context_cited",
            "token_f1",
            "rouge_l",
            "embedding_similarity",
        ],
    }
    for row in rows:
        for metric, value in (row.get("retrieval") or {}).items():
            if isinstance(value, float) and metric not in names["retrieval"]:
                names["retrieval"].append(metric)
    return names


def _mean(values: list[Any]) -> dict[str, float | int | None]:
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return {"mean": round(statistics.fmean(numbers), 4) if numbers else None, "n": len(numbers)}


def _latency(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    stages: dict[str, list[float]] = {}
    for row in rows:
        for stage, value in (row.get("latency_ms") or {}).items():
            if isinstance(value, int | float):
                stages.setdefault(stage, []).append(float(value))
    return {stage: _percentiles(values) for stage, values in stages.items()}


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p95": at(0.95), "mean": round(statistics.fmean(ordered), 1)}
