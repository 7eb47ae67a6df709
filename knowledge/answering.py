"""Answering questions: retrieval, then the LLM (vLLM) or the extractive generator, with
citations checked, and the turn stored in its conversation (knowledge/conversations.py). The
chat, the REST and OpenAI-compatible APIs, the ask and evaluate commands all answer through
here, so they answer alike.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy

from generation.citations import CitationRenumberer, check_citations
from generation.client import CircuitBreaker, VllmClient
from generation.errors import GenerationError
from generation.extractive import EmbedFunction, ExtractiveGenerator
from generation.judges import cached_embed
from generation.prompts import (
    build_messages,
    clean_condensed_question,
    condense_messages,
    heuristic_standalone_question,
    not_found_answer,
)
from retrieval.embedders import Embedder
from retrieval.text import reply_language
from retrieval.tokenize import Bm25Tokenizer
from retrieval.types import Passage

from . import conversations, metrics
from .components import get_embedder
from .models import Conversation, KnowledgeBase
from .search import idf_function, search_passages

logger = logging.getLogger(__name__)


class EmptyQuestionError(ValueError):
    """The question is blank."""

    def __init__(self) -> None:
        super().__init__("Ask a question: the text is empty.")


@dataclass(frozen=True)
class AnswerEvent:
    """One step of a streamed answer: "sources", then "delta" (many), then one "done"."""

    kind: str
    data: dict


# In the language active for the request (the interface's; knowledge/sse.py keeps it for streams).
FALLBACK_NOTICE = gettext_lazy(
    "The language model is unavailable ({reason}); this answer was extracted from the documents "
    "instead."
)


@functools.cache
def _llm_client(
    base_url: str,
    model: str,
    api_key: str,
    connect_timeout: float,
    read_timeout: float,
    max_retries: int,
    max_tokens: int,
    temperature: float,
    circuit_failures: int,
    circuit_cooldown: float,
) -> VllmClient:
    return VllmClient(
        base_url,
        model,
        api_key,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_retries=max_retries,
        max_tokens=max_tokens,
        temperature=temperature,
        breaker=CircuitBreaker(circuit_failures, circuit_cooldown),
    )


def get_llm_client() -> VllmClient | None:
    """The configured LLM client (one per process, so its circuit breaker sees every request),
    or None when RAG_LLM_BASE_URL is empty (extractive answers)."""
    if not settings.RAG_LLM_BASE_URL:
        return None
    return _llm_client(
        settings.RAG_LLM_BASE_URL,
        settings.RAG_LLM_MODEL,
        settings.RAG_LLM_API_KEY,
        settings.RAG_LLM_CONNECT_TIMEOUT,
        settings.RAG_LLM_TIMEOUT,
        settings.RAG_LLM_MAX_RETRIES,
        settings.RAG_LLM_MAX_TOKENS,
        settings.RAG_LLM_TEMPERATURE,
        settings.RAG_LLM_CIRCUIT_FAILURES,
        settings.RAG_LLM_CIRCUIT_COOLDOWN,
    )


def reset_llm_clients() -> None:
    """Forget the LLM clients and their circuit breakers (after a configuration change)."""
    _llm_client.cache_clear()


def get_extractive_generator(knowledge_bases: Iterable[KnowledgeBase] = ()) -> ExtractiveGenerator:
    """The extractive generator, weighing question terms by the knowledge bases' idf."""
    embedder = get_embedder()
    return ExtractiveGenerator(
        _sentence_embed(embedder),
        _BM25_TERMS,
        idf_function(knowledge_bases),
        embed_languages=getattr(embedder, "languages", None),
        max_sentences=settings.RAG_EXTRACTIVE_SENTENCES,
        threshold=settings.RAG_EXTRACTIVE_THRESHOLD,
    )


_BM25_TERMS = Bm25Tokenizer()


# One memory per embedder (embedders live as long as the process, components._load_embedder):
# passages come back question after question, and their sentences need not be embedded again
# (the embedding is most of an extractive answer's time).
_sentence_embeds: dict[tuple[int, str], EmbedFunction] = {}


def _sentence_embed(embedder: Embedder) -> EmbedFunction:
    key = (id(embedder), embedder.name)
    if key not in _sentence_embeds:
        _sentence_embeds[key] = cached_embed(embedder.embed, max_texts=20_000)
    return _sentence_embeds[key]


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
) -> dict:
    """Answer a question and return the REST ask object (the "done" event of stream_answer)."""
    done: dict = {}
    for event in stream_answer(
        question, knowledge_bases, user=user, conversation=conversation, top_k=top_k
    ):
        if event.kind == "done":
            done = event.data
    return done


def stream_answer(
    question: str,
    knowledge_bases: Iterable[KnowledgeBase],
    *,
    user=None,
    conversation: Conversation | None = None,
    top_k: int | None = None,
) -> Iterator[AnswerEvent]:
    """Answer a question from the given knowledge bases (the caller has checked that the user
    may read them), as events: "sources" with the numbered passages, "delta" pieces of the
    answer as it is written, and one "done" with the REST ask object, after the question and
    the answer are stored in the conversation (a new one unless given).

    With RAG_LLM_BASE_URL set the LLM answers; without it, or when it fails, the extractive
    generator does (mode "extractive", and a notice when it stands in for the LLM). The done
    object's answer is authoritative: after a failure mid-stream it replaces the streamed text.
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
    client = get_llm_client()
    model = llm_model_for(bases)
    standalone = _standalone_question(question, history, client, model)
    passages = search_passages(bases, standalone, top_k or settings.RAG_ANSWER_TOP_K, user=user)
    retrieved = time.perf_counter()
    generator = get_extractive_generator(bases)
    run = _GenerationRun(started, question, lambda: generator.answer(standalone, passages).text)
    if not passages or client is None:
        # The whole answer is known before it is shown: number the sources by first use now,
        # so that the sources event is already in the answer's order.
        first_use = CitationRenumberer(len(passages))
        text = first_use.renumbered(run.fallback() if passages else not_found_answer(question))
        passages = [passages[n - 1] for n in first_use.order()]
        pieces = run.emit(text, mode="extractive")
    else:
        pieces = run.stream_llm(client, model, build_messages(standalone, passages, history))
    # Numbers by first use as the answer streams (an identity for an answer numbered already).
    renumber = CitationRenumberer(len(passages))
    yield AnswerEvent("sources", {"passages": _numbered(passages)})
    turn = _Turn(conversation, standalone, passages, run, started, retrieved)
    try:
        for piece in pieces:
            if shown := renumber.feed(piece):
                yield AnswerEvent("delta", {"text": shown})
        if shown := renumber.flush():
            yield AnswerEvent("delta", {"text": shown})
    except GeneratorExit:
        # The client left mid-answer: finish it anyway, so the conversation holds the answer.
        for piece in pieces:
            renumber.feed(piece)
        turn.record(renumber)
        raise
    yield AnswerEvent("done", turn.record(renumber))


class _Turn:
    """One question's answer, recorded once in the conversation, whatever the client does."""

    def __init__(self, conversation, standalone, passages, run, started, retrieved) -> None:
        self.conversation = conversation
        self.standalone = standalone
        self.passages = passages
        self.run = run
        self.started = started
        self.retrieved = retrieved

    def record(self, renumber: CitationRenumberer) -> dict:
        """Store the answer with its checked citations; return the REST ask object."""
        run = self.run
        order = renumber.order()
        passages = [self.passages[n - 1] for n in order] if self.passages else []
        checked = check_citations(renumber.renumbered(run.answer), passages)
        finished = time.perf_counter()
        timings = {
            "retrieval_ms": _ms(self.retrieved - self.started),
            "first_token_ms": _ms(run.first_token - self.started) if run.first_token else None,
            "generation_ms": _ms(finished - self.retrieved),
            "total_ms": _ms(finished - self.started),
        }
        citations = [citation.as_dict() for citation in checked.citations]
        message = conversations.add_answer(
            self.conversation,
            checked.answer,
            citations=citations,
            mode=run.mode,
            standalone_question=self.standalone,
            timings=timings,
            notice=run.notice or "",
        )
        metrics.observe_answer(run.mode, timings)
        return {
            "answer": checked.answer,
            "citations": citations,
            "conversation": self.conversation.pk,
            "message": message.pk,
            "mode": run.mode,
            "invalid_citations": checked.invalid_citations,
            "uncited_sentences": checked.uncited_sentences,
            "notice": run.notice,
            "standalone_question": self.standalone,
            "timings": timings,
            "passages": _numbered(passages),
            # The model server's token counts (None for extractive answers).
            "usage": run.usage,
        }


def _numbered(passages: list[Passage]) -> list[dict]:
    return [_passage_dict(n, p) for n, p in enumerate(passages, start=1)]


class _GenerationRun:
    """The answer as it is generated: text, mode, fallback notice, time of the first piece.
    Its generators yield the answer's text piece by piece."""

    def __init__(self, started: float, question: str, fallback: Callable[[], str]) -> None:
        self.started = started
        self.question = question
        self.fallback = fallback
        self.answer = ""
        self.mode = "extractive"
        self.notice: str | None = None
        self.first_token: float | None = None
        self.usage: dict[str, int] | None = None

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
        self.usage = usage or None

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


def _passage_dict(n: int, passage: Passage) -> dict:
    return {
        "n": n,
        "chunk_id": passage.chunk_id,
        "document_id": passage.document_id,
        "document_title": passage.document_title,
        "page": passage.page,
        "text": passage.text,
    }


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
