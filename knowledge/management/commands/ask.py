"""manage.py ask "QUESTION" --kb NAME [--json]"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from knowledge import answering
from knowledge.answering import Answer
from knowledge.management.knowledge_bases import knowledge_bases_named
from knowledge.serializers import AskResponseSerializer


class Command(BaseCommand):
    help = (
        "Answer a question from one or more knowledge bases and print the answer with its "
        "numbered citations (document and page). Uses the LLM when RAG_LLM_BASE_URL is set, "
        "the extractive generator otherwise. With --json, prints the REST API's ask object."
    )

    def add_arguments(self, parser):
        parser.add_argument("question", help="the question, in quotes")
        parser.add_argument(
            "--kb",
            action="append",
            required=True,
            metavar="NAME",
            help="knowledge base name (repeat to ask several)",
        )
        parser.add_argument(
            "--top-k", type=int, default=None, help="passages given to the generator"
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the answer as JSON"
        )

    def handle(self, *args, question, kb, top_k, as_json, **options):
        knowledge_bases = knowledge_bases_named(kb)
        if top_k is not None and top_k < 1:
            raise CommandError("--top-k must be at least 1.")
        try:
            result = answering.answer_question(question, knowledge_bases, top_k=top_k)
        except answering.EmptyQuestionError as error:
            raise CommandError(str(error)) from None
        if as_json:
            body = AskResponseSerializer(result).data
            self.stdout.write(json.dumps(body, ensure_ascii=False, indent=2))
        else:
            self.stdout.write(format_answer(result))


def format_answer(result: Answer) -> str:
    """The answer, then one line per citation: [n] title, page p."""
    lines = [result.text, ""]
    if result.citations:
        lines.append("Sources:")
        for citation in result.citations:
            page = f", page {citation.page}" if citation.page is not None else ""
            lines.append(f"[{citation.n}] {citation.document_title}{page}")
    if result.invalid_citations:
        dropped = ", ".join(str(n) for n in result.invalid_citations)
        lines.append(f"(dropped citations to sources that do not exist: {dropped})")
    if result.notice:
        lines.append(f"Note: {result.notice}")
    lines.append(f"({result.mode} answer, {result.timings.total_ms} ms)")
    return "\n".join(lines)
