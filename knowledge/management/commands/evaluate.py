"""manage.py evaluate --kb NAME --dataset FILE.jsonl --out DIR [--judge auto|llm|embedded]
[--judge-model NAME] [--limit N] [--top-k K] [--fail-under F]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.errors import GenerationError
from knowledge import components
from knowledge.evaluation import EvaluationError, EvaluationRun, load_dataset
from knowledge.evaluation_report import write_report
from knowledge.management.knowledge_bases import knowledge_base_named
from knowledge.progress import progress


class Command(BaseCommand):
    help = (
        "Run every question of an evaluation dataset (JSON lines: id, question, reference_answer, "
        "reference_contexts, relevant_doc_ids) through the question-answering service and write "
        "DIR/report.json and DIR/report.html: retrieval recall@k, MRR@10 and nDCG@10, "
        "faithfulness, citation recall and precision, answer correctness and latency."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kb", required=True, help="knowledge base name")
        parser.add_argument("--dataset", required=True, type=Path, help="JSON-lines dataset")
        parser.add_argument("--out", required=True, type=Path, help="folder for the report")
        parser.add_argument(
            "--judge",
            choices=["auto", "llm", "embedded"],
            default="auto",
            help="auto: the LLM judge when RAG_LLM_BASE_URL is set, else the embedded judge",
        )
        parser.add_argument("--judge-model", default=None, help="model name for the LLM judge")
        parser.add_argument("--limit", type=int, default=None, help="first N questions only")
        parser.add_argument("--top-k", type=int, default=None, help="passages per answer")
        parser.add_argument(
            "--fail-under",
            type=float,
            default=None,
            help="exit non-zero when mean faithfulness is below this (0..1), e.g. in CI",
        )

    def handle(self, *args, kb, dataset, out, judge, judge_model, limit, top_k, fail_under, **opts):
        if limit is not None and limit < 1 or top_k is not None and top_k < 1:
            raise CommandError("--limit and --top-k must be at least 1.")
        knowledge_base = knowledge_base_named(kb)
        try:
            questions = load_dataset(dataset, limit)
            chosen = components.build_judge(judge, judge_model)
        except (EvaluationError, GenerationError) as error:
            raise CommandError(str(error)) from None
        with progress(total=len(questions), unit="question", desc="Answering and judging") as bar:
            report = EvaluationRun(
                knowledge_base,
                questions,
                chosen,
                top_k=top_k,
                dataset=str(dataset),
                progress=lambda done, total: bar.update(done - bar.n),
            ).run()
        json_path, html_path = write_report(report, out)
        self.stdout.write(summary(report))
        self.stdout.write(f"Wrote {json_path} and {html_path}")
        mean = report["aggregates"]["faithfulness"]["score"]["mean"]
        if fail_under is not None and (mean is None or mean < fail_under):
            raise CommandError(f"Mean faithfulness {mean} is below {fail_under}.", returncode=2)


def summary(report: dict) -> str:
    """A few lines for the terminal: the mean of every aggregate metric and who produced it."""
    aggregates, judges = report["aggregates"], report["judges"]
    lines = [
        f"{aggregates['questions']} question(s), {aggregates['failed']} failed, "
        f'{aggregates.get("not_found", 0)} answered "not found"; judge: {judges["faithfulness"]}'
    ]
    for section in ("retrieval", "faithfulness", "citations", "correctness"):
        for metric, value in (aggregates.get(section) or {}).items():
            mean = "-" if value["mean"] is None else f"{value['mean']:.3f}"
            lines.append(f"  {section:<13}{metric:<22}{mean:>7}  (n={value['n']})")
    total = aggregates.get("latency_ms", {}).get("total_ms")
    if total:
        lines.append(f"  answer latency p50 {total['p50']:.0f} ms, p95 {total['p95']:.0f} ms")
    return "\n".join(lines)
