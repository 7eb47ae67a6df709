"""LoRA training examples of a knowledge base, in the exact prompt format answers are served
with: from an evaluation set's reference answers, from answers users rated well, from questions
an LLM writes about chunks, and "not found" examples. `manage.py build_lora_dataset` writes them
for `python -m generation.lora train`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from generation.errors import GenerationError, GenerationUnavailableError
from generation.lora.dataset import (
    add_marker,
    cite_answer,
    not_found_passages,
    parse_question_reply,
    question_messages,
    read_eval_rows,
    renumber_citations,
    training_example,
)
from generation.prompts import NOT_FOUND_ANSWER
from retrieval.text import split_sentences
from retrieval.types import Hit, Passage

from . import components, conversations, indexing, search
from .models import KnowledgeBase, Message

# LLM calls cost time and money: without --limit, at most this many generated questions.
DEFAULT_GENERATED_LIMIT = 100
# "Not found" examples per answered one, by default: enough to teach the reply without making
# the adapter refuse questions its passages do answer.
DEFAULT_NOT_FOUND_SHARE = 0.2
# Candidates searched for passages that lack an answer, as a multiple of --top-k.
NOT_FOUND_DEPTH = 4


@dataclass
class SourceReport:
    """Examples built from one source, and why others were left out."""

    label: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    note: str = ""

    def line(self) -> str:
        if self.note:
            return f"{self.label:<21}left out: {self.note}"
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.left_out.items())
        return f"{self.label:<21}{len(self.examples):>5} example(s)" + (
            f" ({reasons})" if reasons else ""
        )


def build_examples(
    knowledge_base: KnowledgeBase,
    top_k: int,
    limit: int | None,
    *,
    dataset: Path | None,
    generated: bool,
    not_found_share: float,
) -> list[SourceReport]:
    """The examples of every source, with counts of what each left out; raises
    TrainingDataError for an unreadable evaluation set."""
    builder = ExampleBuilder(knowledge_base, top_k, limit)
    reports = [
        builder.from_eval_set(dataset),
        builder.from_rated_answers(),
        builder.from_generated_questions(enabled=generated),
    ]
    return [*reports, builder.not_found(not_found_share)]


class ExampleBuilder:
    """Training examples of one knowledge base, each prompt holding the passages the question
    retrieves there (top_k of them, numbered as the answering service numbers them)."""

    def __init__(self, knowledge_base: KnowledgeBase, top_k: int, limit: int | None) -> None:
        self.knowledge_base = knowledge_base
        self.top_k = top_k
        self.limit = limit
        # (question, answer) of every answered example, for the "not found" ones.
        self.answered: list[tuple[str, str]] = []

    def search(self, question: str) -> list[Passage]:
        return search.search_passages([self.knowledge_base], question, self.top_k)

    # --- (1) reference answers of an evaluation set ----------------------------------------

    def from_eval_set(self, path: Path | None) -> SourceReport:
        report = SourceReport("evaluation set")
        if path is None:
            report.note = "no --dataset given"
            return report
        rows = read_eval_rows(path)  # raises TrainingDataError
        for row in _progress(rows, "evaluation set"):
            if self._full(report):
                break
            reference = str(row.get("reference_answer") or "").strip()
            if not reference:
                report.left_out["without reference answer"] += 1
                continue
            question = str(row["question"]).strip()
            passages = self.search(question)
            answer = cite_answer(reference, passages)
            if answer is None:
                report.left_out["not supported by the retrieved passages"] += 1
                continue
            report.examples.append(training_example(question, passages, answer, "evaluation"))
            self.answered.append((question, reference))
        return report

    # --- (2) answers users rated well -------------------------------------------------------

    def from_rated_answers(self) -> SourceReport:
        report = SourceReport("rated answers")
        for message in conversations.answers_rated_well(self.knowledge_base):
            if self._full(report):
                break
            question = message.standalone_question or conversations.question_before(message)
            example = self._rated_example(question, message) if question else None
            if example is None:
                report.left_out["cite passages no longer in the knowledge base"] += 1
            else:
                report.examples.append(example)
                self.answered.append((question, message.text))
        return report

    def _rated_example(self, question: str, message: Message) -> dict[str, Any] | None:
        cited = {int(c["n"]): int(c["chunk_id"]) for c in message.citations or []}
        passages = self._with_chunks(self.search(question), set(cited.values()))
        position = {p.chunk_id: n for n, p in enumerate(passages, start=1)}
        if any(chunk_id not in position for chunk_id in cited.values()):
            return None
        answer = renumber_citations(message.text, {n: position[c] for n, c in cited.items()})
        return training_example(question, passages, answer, "rated") if answer else None

    def _with_chunks(self, passages: list[Passage], chunk_ids: set[int]) -> list[Passage]:
        """passages with the given chunks added (in place of the lowest-ranked uncited ones)."""
        present = {p.chunk_id for p in passages}
        hits = [Hit(chunk_id, 0.0) for chunk_id in sorted(chunk_ids - present)]
        extra = search.passages_for(hits, allowed=[self.knowledge_base.pk]) if hits else []
        kept = list(passages)
        while len(kept) + len(extra) > self.top_k:
            uncited = [i for i, p in enumerate(kept) if p.chunk_id not in chunk_ids]
            if not uncited:
                break
            del kept[uncited[-1]]
        return kept + extra

    # --- (3) questions an LLM writes about chunks ------------------------------------------

    def from_generated_questions(self, enabled: bool) -> SourceReport:
        report = SourceReport("generated questions")
        client = components.get_llm_client() if enabled else None
        if client is None:
            report.note = (
                "--no-generated given" if not enabled else "no LLM configured (RAG_LLM_BASE_URL)"
            )
            return report
        passages = self._sample_passages(self.limit or DEFAULT_GENERATED_LIMIT)
        for asked, passage in enumerate(_progress(passages, "generated questions")):
            try:
                reply = client.chat(question_messages(passage), temperature=0.7)
            except GenerationUnavailableError as error:
                if not report.examples:
                    report.note = f"the LLM is unavailable: {error}"
                report.left_out["not asked: the LLM became unavailable"] += len(passages) - asked
                break
            except GenerationError:
                report.left_out["LLM errors"] += 1
                continue
            self._add_generated(report, passage, reply)
        return report

    def _add_generated(self, report: SourceReport, passage: Passage, reply: str) -> None:
        pair = parse_question_reply(reply)
        if pair is None:
            report.left_out["unusable LLM replies"] += 1
            return
        question, answer = pair
        passages = self.search(question)
        n = next((i for i, p in enumerate(passages, 1) if p.chunk_id == passage.chunk_id), None)
        if n is None:
            report.left_out["questions that do not retrieve their chunk"] += 1
            return
        cited = " ".join(add_marker(sentence, n) for sentence in split_sentences(answer))
        report.examples.append(training_example(question, passages, cited, "generated"))
        self.answered.append((question, answer))

    # --- (4) "not found": questions whose retrieved passages lack the answer ----------------

    def not_found(self, share: float) -> SourceReport:
        """One example per 1/share answered ones, spread over them: the question, the best
        retrieved passages that do not hold its answer, and the exact not-found reply."""
        report = SourceReport("not found")
        wanted = round(share * len(self.answered))
        wanted = wanted if self.limit is None else min(wanted, self.limit)
        if not wanted:
            report.note = "--not-found-share 0" if share == 0 else "no answered example yet"
            return report
        step = max(1, len(self.answered) // wanted)
        for question, answer in _progress(self.answered[::step][:wanted], "not found"):
            candidates = search.search_passages(
                [self.knowledge_base], question, self.top_k * NOT_FOUND_DEPTH
            )
            passages = not_found_passages(answer, candidates, self.top_k)
            if not passages:
                report.left_out["every retrieved passage holds the answer"] += 1
                continue
            report.examples.append(
                training_example(question, passages, NOT_FOUND_ANSWER, "not-found")
            )
        return report

    def _sample_passages(self, count: int) -> list[Passage]:
        """count chunks spread evenly over the knowledge base (every k-th by id)."""
        ids = list(
            indexing.searchable_chunks(self.knowledge_base)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        step = max(1, len(ids) // count)
        hits = [Hit(chunk_id, 1.0) for chunk_id in ids[::step][:count]]
        return search.passages_for(hits, allowed=[self.knowledge_base.pk])

    def _full(self, report: SourceReport) -> bool:
        return self.limit is not None and len(report.examples) >= self.limit


def _progress(items: list, label: str) -> Iterator:
    """A progress bar on a terminal (none when output is redirected)."""
    return tqdm(items, desc=label, unit="q", disable=None, dynamic_ncols=True, leave=False)
