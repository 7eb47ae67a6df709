"""Answering questions: retrieval, then the LLM (vLLM) or the extractive generator, with
citations checked, and the turn stored in its conversation (knowledge/conversations.py). The
chat, the REST and OpenAI-compatible APIs, the ask and evaluate commands all answer through
here, so they answer alike.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import ClassVar

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy

from generation.citations import Citation, CitationRenumberer, check_citations
from generation.client import VllmClient
from generation.errors import GenerationError
from generation.prompts import (
    build_messages,
    clean_condensed_question,
    condense_messages,
    heuristic_standalone_question,
    not_found_answer,
)
from retrieval.text import reply_language
from retrieval.types import Passage

from . import conversations, metrics
from .components import get_extractive_generator, get_llm_client
from .models import Conversation, KnowledgeBase
from .search import idf_function, search_passages

logger = logging.getLogger(__name__)


class EmptyQuestionError(ValueError):
    """The question is blank."""

    def __init__(self) -> None:
        super().__init__("Ask a question: the text is empty.")


@dataclass(frozen=True)
class Timings:
    """Milliseconds from the start of the request."""

    retrieval_ms: int
    first_token_ms: int | None
    generation_ms: int
    total_ms: int


@dataclass(frozen=True)
class Usage:
    """The model server's token counts."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def reported(cls, counts: dict[str, int]) -> Usage | None:
        """The counts a server reported, or None where it reported none (or half of them)."""
        prompt, completion = counts.get("prompt_tokens"), counts.get("completion_tokens")
        if prompt is None or completion is None:
            return None
        return cls(prompt, completion, counts.get("total_tokens", prompt + completion))


@dataclass(frozen=True)
class Answer:
    """An answer as stored in its conversation; the REST API's ask object
    (serializers.AskResponseSerializer). Citations and passages are numbered alike: [n] of the
    text is citations' and passages' n."""

    text: str
    citations: tuple[Citation, ...]
    conversation: int
    message: int
    mode: str  # "llm" or "extractive"
    invalid_citations: tuple[int, ...]
    uncited_sentences: tuple[str, ...]
    notice: str | None  # why the extractive generator stood in for the LLM
    standalone_question: str  # the question as retrieval saw it, the conversation folded in
    timings: Timings
    passages: tuple[Citation, ...]  # every passage given to the generator, numbered
    usage: Usage | None  # None for extractive answers


@dataclass(frozen=True)
class Sources:
    """The first event of a streamed answer: the numbered passages it is drawn from."""

    passages: tuple[Citation, ...]
    kind: ClassVar[str] = "sources"


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text as it is written."""

    text: str
    kind: ClassVar[str] = "delta"


@dataclass(frozen=True)
class Done:
    """The last event: the answer, stored; its text replaces what was streamed."""

    answer: Answer
    kind: ClassVar[str] = "done"


AnswerEvent = Sources | Delta | Done


# In the language active for the request (the interface's; knowledge/sse.py keeps it for streams).
FALLBACK_NOTICE = gettext_lazy(
    "The language model is unavailable ({reason}); this answer was extracted from the documents "
    "instead."
)


def llm_model_for(knowledge_bases: Iterable[KnowledgeBase]) -> str:
    """The knowledge bases' LoRA adapter when they all name the same one, else RAG_LLM_MODEL."""
    adapters = {kb.lora_adapter for kb in knowledge_bases}
    if len(adapters) == 1 and (adapter := adapters.pop()):
        return adapter
    return settings.RAG_LLM_MODEL


def answer_question(
    question: str,
    knowledge_bases: Iterable[KnowledgeBase],
    *,
    user=None,
    conversation: Conversation | None = None,
    top_k: int | None = None,
) -> Answer:
    """Answer a question: the answer of stream_answer's "done" event."""
    events = stream_answer(
        question, knowledge_bases, user=user, conversation=conversation, top_k=top_k
    )
    return next(event.answer for event in events if isinstance(event, Done))


def stream_answer(
    question: str,
    knowledge_bases: Iterable[KnowledgeBase],
    *,
    user=None,
    conversation: Conversation | None = None,
    top_k: int | None = None,
) -> Iterator[AnswerEvent]:
    """Answer a question from the given knowledge bases (the caller has checked that the user
    may read them), as events: Sources with the numbered passages, Delta pieces of the answer
    as it is written, and one Done with the answer, after the question and the answer are
    stored in the conversation (a new one unless given).

    With RAG_LLM_BASE_URL set the LLM answers; without it, or when it fails, the extractive
    generator does (mode "extractive", and a notice when it stands in for the LLM). The done
    answer is authoritative: after a failure mid-stream it replaces the streamed text.
    Raises EmptyQuestionError, and conversations.ConversationNotFoundError for another user's
    conversation.
    """
    started = time.perf_counter()
    question = " ".join(question.split())
    if not question:
        raise EmptyQuestionError()
    bases = list(knowledge_bases)
    conversation = conversations.conversation_for(user, question, bases, conversation)
    history = conversations.recent_turns(conversation, user)
    conversations.add_question(conversation, question)
    client, model = get_llm_client(), llm_model_for(bases)
    standalone = _standalone_question(question, history, client, model)
    passages = search_passages(bases, standalone, top_k or settings.RAG_ANSWER_TOP_K, user=user)
    turn = _Turn(conversation, question, standalone, passages, started)
    generator = get_extractive_generator(idf_function(bases))
    turn.run.fallback = lambda: generator.answer(standalone, passages).text
    if not passages or client is None:
        pieces = turn.extract()
    else:
        pieces = turn.run.stream_llm(client, model, build_messages(standalone, passages, history))
    yield from turn.events(pieces)


class _Turn:
    """One question's answer, recorded once in the conversation, whatever the client does."""

    def __init__(self, conversation, question, standalone, passages, started) -> None:
        self.conversation = conversation
        self.standalone = standalone
        self.passages = passages
        self.started = started
        self.retrieved = time.perf_counter()
        self.run = _GenerationRun(question)

    def extract(self) -> Iterator[str]:
        """The extractive answer. It is known before it is shown: the sources are numbered by
        first use now, so that the Sources event is already in the answer's order."""
        first_use = CitationRenumberer(len(self.passages))
        fallback = self.run.fallback() if self.passages else not_found_answer(self.run.question)
        text = first_use.renumbered(fallback)
        self.passages = [self.passages[n - 1] for n in first_use.order()]
        return self.run.emit(text, mode="extractive")

    def events(self, pieces: Iterator[str]) -> Iterator[AnswerEvent]:
        # Numbers by first use as the answer streams (an identity for an answer numbered
        # already).
        renumber = CitationRenumberer(len(self.passages))
        yield Sources(_numbered(self.passages))
        try:
            for piece in pieces:
                if shown := renumber.feed(piece):
                    yield Delta(shown)
            if shown := renumber.flush():
                yield Delta(shown)
        except GeneratorExit:
            # The client left mid-answer: finish it anyway, so the conversation holds it.
            for piece in pieces:
                renumber.feed(piece)
            self.record(renumber)
            raise
        yield Done(self.record(renumber))

    def record(self, renumber: CitationRenumberer) -> Answer:
        """Store the answer with its checked citations."""
        run = self.run
        order = renumber.order()
        passages = [self.passages[n - 1] for n in order] if self.passages else []
        checked = check_citations(renumber.renumbered(run.answer), passages)
        timings = self._timings()
        message = conversations.add_answer(
            self.conversation,
            checked.answer,
            citations=[citation.as_dict() for citation in checked.citations],
            mode=run.mode,
            standalone_question=self.standalone,
            timings=asdict(timings),
            notice=run.notice or "",
        )
        metrics.observe_answer(run.mode, asdict(timings))
        return Answer(
            text=checked.answer,
            citations=tuple(checked.citations),
            conversation=self.conversation.pk,
            message=message.pk,
            mode=run.mode,
            invalid_citations=tuple(checked.invalid_citations),
            uncited_sentences=tuple(checked.uncited_sentences),
            notice=run.notice,
            standalone_question=self.standalone,
            timings=timings,
            passages=_numbered(passages),
            usage=run.usage,
        )

    def _timings(self) -> Timings:
        finished, first = time.perf_counter(), self.run.first_token
        return Timings(
            retrieval_ms=_ms(self.retrieved - self.started),
            first_token_ms=_ms(first - self.started) if first else None,
            generation_ms=_ms(finished - self.retrieved),
            total_ms=_ms(finished - self.started),
        )


def _numbered(passages: list[Passage]) -> tuple[Citation, ...]:
    """The passages as given to the generator, numbered [1]..[n]."""
    return tuple(
        Citation(n, p.chunk_id, p.document_id, p.document_title, p.page, p.text)
        for n, p in enumerate(passages, start=1)
    )


class _GenerationRun:
    """The answer as it is generated: text, mode, fallback notice, time of the first piece.
    Its generators yield the answer's text piece by piece."""

    def __init__(self, question: str) -> None:
        self.question = question
        # The extractive answer, for when the LLM is not there or fails.
        self.fallback: Callable[[], str] = lambda: not_found_answer(question)
        self.answer = ""
        self.mode = "extractive"
        self.notice: str | None = None
        self.first_token: float | None = None
        self.usage: Usage | None = None

    def emit(self, text: str, mode: str) -> Iterator[str]:
        """A ready answer, streamed sentence by sentence like a generated one."""
        self.mode = mode
        self.answer = text
        for piece in _pieces(text):
            self._mark_first()
            yield piece

    def stream_llm(self, client: VllmClient, model: str, messages: list[dict]) -> Iterator[str]:
        pieces: list[str] = []
        usage: dict[str, int] = {}
        try:
            for piece in client.stream_chat(messages, model=model, usage=usage):
                self._mark_first()
                pieces.append(piece)
                yield piece
        except GenerationError as error:
            logger.warning("LLM generation failed, answering extractively: %s", error)
            metrics.observe_fallback(streamed=bool(pieces), error=error)
            with translation.override(_interface_language(self.question)):
                self.notice = str(FALLBACK_NOTICE).format(reason=_reason(error, bool(pieces)))
            if pieces:
                # Not streamed after the broken text: the done answer replaces what was shown.
                self.mode, self.answer = "extractive", self.fallback()
            else:
                yield from self.emit(self.fallback(), mode="extractive")
            return
        self.mode = "llm"
        self.answer = "".join(pieces).strip() or not_found_answer(self.question)
        self.usage = Usage.reported(usage)

    def _mark_first(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()


def _interface_language(question: str) -> str:
    """The interface language for notices about an answer: Chinese for a Chinese question, else
    the request's own language."""
    return "zh-hans" if reply_language(question).startswith("zh") else translation.get_language()


def _reason(error: GenerationError, streamed: bool) -> str:
    reason = str(error).rstrip(".")
    return gettext("it stopped mid-answer: {reason}").format(reason=reason) if streamed else reason


def _pieces(text: str) -> list[str]:
    """Text cut after each sentence, keeping the spaces, so that the pieces join back to it."""
    pieces = [p for p in re.split(r"(?<=[.!?\]\u3002\uff01\uff1f])(\s*)", text) if p]
    merged: list[str] = []
    for piece in pieces:
        if piece.isspace() and merged:
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def _standalone_question(
    question: str, history: list[tuple[str, str]], client: VllmClient | None, model: str
) -> str:
    """The question with what it refers to from the conversation folded in (for retrieval)."""
    if not history:
        return question
    if client is not None:
        try:
            reply = client.chat(
                condense_messages(history, question), model=model, max_tokens=96, temperature=0
            )
            return clean_condensed_question(reply, fallback=question)
        except GenerationError as error:
            logger.warning("Condensing the follow-up with the LLM failed: %s", error)
            metrics.observe_llm_error("condense", error)
    return heuristic_standalone_question(history, question)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
