"""manage.py build_lora_dataset --kb NAME --out FILE.jsonl [--dataset EVAL.jsonl] [--limit N]
[--top-k K] [--no-generated] [--not-found-share S]"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.lora.dataset import write_examples
from generation.lora.errors import TrainingDataError
from knowledge import indexing
from knowledge.lora_examples import DEFAULT_NOT_FOUND_SHARE, build_examples
from knowledge.management.knowledge_bases import knowledge_base_named


class Command(BaseCommand):
    help = (
        "Build LoRA training examples from a knowledge base, in the exact prompt format answers "
        "are served with: from an evaluation set's reference answers, from answers users rated "
        "well, and (when an LLM is configured) from questions the LLM writes about chunks. "
        "Writes JSON lines for `python -m generation.lora train` and prints counts per source."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kb", required=True, help="knowledge base name")
        parser.add_argument("--out", required=True, type=Path, help="JSON lines file to write")
        parser.add_argument(
            "--dataset", type=Path, help="evaluation set (JSON lines with reference_answer)"
        )
        parser.add_argument(
            "--limit", type=int, help="at most N examples from each source (default: all)"
        )
        parser.add_argument(
            "--top-k",
            type=int,
            default=settings.RAG_ANSWER_TOP_K,
            help="passages per prompt, as answers get them (default: RAG_ANSWER_TOP_K)",
        )
        parser.add_argument(
            "--no-generated", action="store_true", help="do not ask the LLM for questions"
        )
        parser.add_argument(
            "--not-found-share",
            type=float,
            default=DEFAULT_NOT_FOUND_SHARE,
            help="'not found' examples per answered example, 0..1: the question with retrieved "
            f"passages that lack its answer (default {DEFAULT_NOT_FOUND_SHARE})",
        )

    def handle(
        self, *args, kb, out, dataset, limit, top_k, no_generated, not_found_share, **options
    ):
        knowledge_base = knowledge_base_named(kb)
        if not indexing.searchable_chunks(knowledge_base).exists():
            raise CommandError(f"{kb} has no indexed document yet: ingest documents first.")
        check_numbers(limit, top_k, not_found_share)
        try:
            reports = build_examples(
                knowledge_base,
                top_k,
                limit,
                dataset=dataset,
                generated=not no_generated,
                not_found_share=not_found_share,
            )
        except TrainingDataError as error:
            raise CommandError(str(error)) from None
        examples = [example for report in reports for example in report.examples]
        for report in reports:
            self.stdout.write(report.line())
        if not examples:
            raise CommandError("No training example could be built; nothing was written.")
        written = write_examples(out, examples)
        self.stdout.write(f"wrote {written} example(s) to {out}")


def check_numbers(limit: int | None, top_k: int, not_found_share: float) -> None:
    if limit is not None and limit < 1 or top_k < 1:
        raise CommandError("--limit and --top-k must be at least 1.")
    if not 0 <= not_found_share <= 1:
        raise CommandError("--not-found-share must be between 0 and 1.")
