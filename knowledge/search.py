"""Hybrid search over knowledge bases' published indexes, turned into passages for answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from django.conf import settings

from retrieval.hybrid import HybridRetriever
from retrieval.rerank import Candidate, NoReranker, Reranker
from retrieval.sparse import present_idf
from retrieval.types import Hit, Passage

from .components import get_embedder, get_reranker
from .indexing import loaded_index
from .models import HEADING_SEPARATOR, SEARCHABLE_STATES, Chunk, KnowledgeBase


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """A passage at its rank (1: the best) in a search's results."""

    rank: int
    passage: Passage


def ranked(passages: Sequence[Passage]) -> tuple[SearchResult, ...]:
    return tuple(SearchResult(rank, passage) for rank, passage in enumerate(passages, start=1))


def search_passages(
    knowledge_bases: Iterable[KnowledgeBase], query: str, top_k: int = 10, *, user=None
) -> list[Passage]:
    """Hybrid search (dense + BM25, fused, then reranked) over the given knowledge bases only.

    With a user, only those of the knowledge bases the user may read right now are searched,
    whatever the caller resolved before. A search that meets a version published while it ran
    (hits whose chunks were just replaced, or its index version already pruned) runs once
    more on the bases' current versions, so a document indexed again never drops out.
    """
    if top_k <= 0 or not query.strip():
        return []
    reranker = get_reranker()
    depth = top_k if isinstance(reranker, NoReranker) else max(top_k, settings.RAG_RERANK_DEPTH)
    passages: list[Passage] = []
    for _attempt in range(2):
        bases = KnowledgeBase.objects.filter(pk__in=[kb.pk for kb in knowledge_bases])
        if user is not None:
            bases = bases.filter(pk__in=KnowledgeBase.objects.readable_by(user).values("pk"))
        loaded = [(kb, loaded_index(kb)) for kb in bases]
        pairs = {kb.pk: pair for kb, pair in loaded if pair and len(pair.dense)}
        if not pairs:
            return []
        retriever = HybridRetriever(
            get_embedder(),
            [(pair.dense, pair.sparse) for pair in pairs.values()],
            depth=settings.RAG_RETRIEVAL_DEPTH,
            fusion=settings.RAG_FUSION,
            dense_weight=settings.RAG_FUSION_DENSE_WEIGHT,
        )
        hits = retriever.search(query, depth)
        passages = passages_for(hits, allowed=list(pairs))
        pruned = any(pair is None and kb.index_version for kb, pair in loaded)
        if len(passages) == len(hits) and not pruned:
            break
    return reranked(reranker, query, passages, top_k)


def reranked(reranker: Reranker, query: str, passages: list[Passage], top_k: int) -> list[Passage]:
    """The top_k passages in the reranker's order, with its scores."""
    candidates = [Candidate(p.chunk_id, p.text, p.score) for p in passages]
    by_id = {passage.chunk_id: passage for passage in passages}
    return [
        dataclasses.replace(by_id[hit.chunk_id], score=hit.score)
        for hit in reranker.rerank(query, candidates, top_k)
    ]


def passages_for(hits: list[Hit], allowed: list[int]) -> list[Passage]:
    """Load the hits' chunks, keeping only searchable ones of the allowed knowledge bases."""
    chunks = Chunk.objects.filter(
        pk__in=[hit.chunk_id for hit in hits],
        knowledge_base_id__in=allowed,
        document__state__in=SEARCHABLE_STATES,
    ).select_related("document")
    by_id = {chunk.pk: chunk for chunk in chunks}
    return [
        Passage(
            chunk_id=chunk.pk,
            text=chunk.text,
            score=hit.score,
            document_id=chunk.document_id,
            document_title=str(chunk.document),
            page=chunk.page,
            heading_path=tuple(filter(None, chunk.heading_path.split(HEADING_SEPARATOR))),
            knowledge_base_id=chunk.knowledge_base_id,
        )
        for hit in hits
        if (chunk := by_id.get(hit.chunk_id))
    ]


def idf_function(
    knowledge_bases: Iterable[KnowledgeBase],
) -> Callable[[Sequence[str]], dict[str, float]]:
    """The idf of BM25 terms over the knowledge bases' published indexes taken together, for
    weighing a question's words by how rare they are there (terms found nowhere left out)."""
    sparse = [
        pair.sparse for kb in knowledge_bases if (pair := loaded_index(kb)) and len(pair.sparse)
    ]

    def idf(terms: Sequence[str]) -> dict[str, float]:
        return present_idf(sparse, list(terms))

    return idf
