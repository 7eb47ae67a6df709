"""Every configurable library object, built from settings: the embedder, the OCR engine,
the parse limits, the index store, the reranker, the LLM client, the extractive generator and
the faithfulness judge, each loaded once per process where loading costs.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from django.conf import settings

from generation.client import CircuitBreaker, VllmClient
from generation.extractive import EmbedFunction, ExtractiveGenerator, IdfFunction
from generation.faithfulness import Judge
from generation.judges import cached_embed, make_judge
from retrieval.dense import FaissIndex
from retrieval.embedders import Embedder, HashingEmbedder, OnnxEmbedder, SentenceTransformerEmbedder
from retrieval.limits import ParseLimits
from retrieval.ocr import TesseractOcr
from retrieval.rerank import Candidate, CrossEncoderReranker, NoReranker, Reranker, WindowReranker
from retrieval.sparse import Bm25Index
from retrieval.store import IndexPair, IndexStore
from retrieval.text import word_bigrams
from retrieval.tokenize import Bm25Tokenizer

from .models import KnowledgeBase

logger = logging.getLogger(__name__)


EMBEDDERS: dict[str, Callable[[str], Embedder]] = {
    "hashing": lambda name: HashingEmbedder(dimension=int(name.partition(":")[2] or 256)),
}


# What runs a real model (RAG_EMBEDDING_BACKEND). The ONNX backends export the model once into
# RAG_DATA_DIR/models/ (shared by the workers of one machine) and load it from there after.
EMBEDDING_BACKENDS: dict[str, Callable[[str], Embedder]] = {
    "torch": lambda model: SentenceTransformerEmbedder(
        model, batch_size=settings.RAG_EMBEDDING_BATCH_SIZE, threads=settings.RAG_EMBEDDING_THREADS
    ),
    "onnx": lambda model: _onnx_embedder(model, quantize=False),
    "onnx-int8": lambda model: _onnx_embedder(model, quantize=True),
}


def _onnx_embedder(model: str, quantize: bool) -> OnnxEmbedder:
    return OnnxEmbedder(
        model,
        settings.RAG_DATA_DIR / "models",
        quantize=quantize,
        batch_size=settings.RAG_EMBEDDING_BATCH_SIZE,
        threads=settings.RAG_EMBEDDING_THREADS,
    )


def get_embedder() -> Embedder:
    """The configured embedding model, loaded once per process."""
    return _load_embedder(settings.RAG_EMBEDDING_MODEL, settings.RAG_EMBEDDING_BACKEND)


def get_ocr(knowledge_base: KnowledgeBase | None = None) -> TesseractOcr | None:
    """The OCR engine for scanned pages and images, in the knowledge base's languages or else
    RAG_OCR_LANGUAGES; None when RAG_OCR_LANGUAGES is empty (OCR off)."""
    if not settings.RAG_OCR_LANGUAGES:
        return None
    own = knowledge_base.ocr_languages if knowledge_base else ""
    languages = own or settings.RAG_OCR_LANGUAGES
    return TesseractOcr(languages, settings.RAG_OCR_DPI, settings.RAG_OCR_PAGE_TIMEOUT)


def parse_limits() -> ParseLimits:
    """What one uploaded file may cost to read."""
    return ParseLimits(
        unpacked_bytes=settings.RAG_MAX_UNPACKED_MB * 1024 * 1024,
        xml_elements=settings.RAG_MAX_XML_ELEMENTS,
        sheet_cells=settings.RAG_MAX_SHEET_CELLS,
        image_pixels=settings.RAG_MAX_IMAGE_PIXELS,
        image_pages=settings.RAG_MAX_IMAGE_PAGES,
    )


@functools.cache
def _load_embedder(name: str, backend: str) -> Embedder:
    factory = EMBEDDERS.get(name.partition(":")[0])
    if factory:
        return factory(name)
    return EMBEDDING_BACKENDS[backend](name)


def empty_index_pair() -> IndexPair:
    """A new, empty dense and sparse index pair for the configured embedder, turning into an
    approximate (IVF) index past RAG_ANN_THRESHOLD vectors."""
    dense = FaissIndex(
        get_embedder().dimension,
        ann_threshold=settings.RAG_ANN_THRESHOLD,
        probes=settings.RAG_ANN_PROBES,
    )
    return IndexPair(dense, Bm25Index())


def with_search_settings(pair: IndexPair) -> IndexPair:
    """A loaded pair, searched with the configured IVF probes (RAG_ANN_PROBES)."""
    pair.dense.probes = settings.RAG_ANN_PROBES
    return pair


def get_index_store() -> IndexStore:
    return IndexStore(settings.RAG_DATA_DIR / "indexes")


# The reranker for each value of RAG_RERANKER_MODEL; any other value names a cross-encoder.
RERANKERS: dict[str, Callable[[str], Reranker]] = {
    "": lambda name: NoReranker(),
    "window": lambda name: WindowReranker(get_embedder()),
}


def get_reranker() -> Reranker:
    """The configured reranker, loaded once per process."""
    return _load_reranker(settings.RAG_RERANKER_MODEL, settings.RAG_EMBEDDING_MODEL)


@functools.cache
def _load_reranker(name: str, embedding_model: str) -> Reranker:
    # Keyed by the embedding model too: the window reranker embeds with it.
    factory = RERANKERS.get(name)
    return factory(name) if factory else CrossEncoderReranker(name)


def warm_up() -> None:
    """With RAG_WARM_UP, load the embedding model, the reranker and the Chinese word segmenter
    and run each once, so that a web worker's first question is as fast as the rest
    (rag_site/wsgi.py and asgi.py call this as a worker starts); says in the log what it loaded
    and how long it took."""
    if not settings.RAG_WARM_UP:
        return
    started = time.perf_counter()
    embedder = get_embedder()
    embedder.embed(["warm up"])
    reranker = get_reranker()
    reranker.rerank("warm up", [Candidate(0, "warm up", 0.0)], 1)
    word_bigrams("预热")  # jieba reads its dictionary on first use
    logger.info(
        "Warmed up in %.1f s: embedding model %s, reranker %s (RAG_WARM_UP)",
        time.perf_counter() - started,
        embedder.name,
        settings.RAG_RERANKER_MODEL or "none",
    )


# --- Answers: the LLM client, the extractive generator and the faithfulness judge -------------


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


def get_extractive_generator(idf: IdfFunction | None = None) -> ExtractiveGenerator:
    """The extractive generator, weighing question terms by idf (search.idf_function over the
    knowledge bases searched)."""
    embedder = get_embedder()
    return ExtractiveGenerator(
        _sentence_embed(embedder),
        _BM25_TERMS,
        idf,
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


def build_judge(kind: str, judge_model: str | None = None) -> Judge:
    """The faithfulness judge for evaluate's `--judge` (generation.judges.make_judge's kinds):
    auto is the LLM judge when RAG_LLM_BASE_URL is set, else the embedded judge on the
    configured embedding model; judge_model names another model for the LLM judge.

    Raises:
        GenerationError: for an unknown kind, or the LLM judge without a server.
    """
    judge = make_judge(kind, embed=get_embedder().embed, client=get_llm_client())
    if judge_model and hasattr(judge, "model"):
        judge.model = judge_model
    return judge
