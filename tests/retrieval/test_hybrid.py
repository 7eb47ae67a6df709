"""HybridRetriever over real FAISS and BM25 indexes, and the LangChain retriever around search."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from langchain_core.documents import Document

from retrieval.dense import FaissIndex
from retrieval.embedders import HashingEmbedder, ProgressCallback
from retrieval.fusion import reciprocal_rank_fusion, weighted_fusion
from retrieval.hybrid import HybridRetriever
from retrieval.langchain import KnowledgeBaseRetriever
from retrieval.sparse import Bm25Index
from retrieval.types import Passage

HANDBOOK = {
    1: "Parental leave is sixteen weeks at full pay for every parent",
    2: "Annual leave is twenty five days plus public holidays",
    3: "Expenses are reimbursed within thirty days of a receipt",
    4: "Laptops are replaced every three years by the IT desk",
    5: "Sick leave needs a doctor's note after seven days",
}
ENGINEERING = {
    11: "Deploys run every weekday morning after the tests pass",
    12: "On-call engineers get a day of leave after a night shift",
    13: "Code review needs one approval from the owning team",
}
QUERIES = ["how many weeks of parental leave", "leave after a night on call", "laptop replacement"]


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording how many texts each call to embed received."""

    def __init__(self) -> None:
        super().__init__(dimension=64)
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], progress: ProgressCallback | None = None) -> np.ndarray:
        self.calls.append(len(texts))
        return super().embed(texts, progress)


def index_pair(embedder: HashingEmbedder, corpus: dict[int, str]) -> tuple[FaissIndex, Bm25Index]:
    dense, sparse = FaissIndex(embedder.dimension), Bm25Index()
    ids, texts = list(corpus), list(corpus.values())
    dense.add(ids, embedder.embed(texts))
    sparse.add(ids, texts)
    return dense, sparse


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
def handbook(embedder) -> tuple[FaissIndex, Bm25Index]:
    return index_pair(embedder, HANDBOOK)


@pytest.fixture
def engineering(embedder) -> tuple[FaissIndex, Bm25Index]:
    return index_pair(embedder, ENGINEERING)


def test_rrf_search_fuses_the_dense_and_bm25_rankings(embedder, handbook):
    retriever = HybridRetriever(embedder, [handbook], depth=4)
    query = QUERIES[0]
    vector = embedder.embed([query])[0]
    expected = reciprocal_rank_fusion([handbook[0].search(vector, 4), handbook[1].search(query, 4)])
    assert retriever.search(query, k=3) == expected[:3]
    assert retriever.search(query, k=3)[0].chunk_id == 1


def test_weighted_search_uses_the_dense_weight(embedder, handbook):
    query = QUERIES[0]
    vector = embedder.embed([query])[0]
    rankings = [handbook[0].search(vector, 5), handbook[1].search(query, 5)]
    retriever = HybridRetriever(embedder, [handbook], depth=5, fusion="weighted", dense_weight=0.8)
    assert retriever.search(query, k=5) == weighted_fusion(rankings, [0.8, 0.2])[:5]


def test_weighted_search_uses_the_normalisation(embedder, handbook):
    query = QUERIES[0]
    vector = embedder.embed([query])[0]
    rankings = [handbook[0].search(vector, 5), handbook[1].search(query, 5)]
    retriever = HybridRetriever(
        embedder, [handbook], depth=5, fusion="weighted", dense_weight=0.3, normalisation="zscore"
    )
    assert retriever.search(query, k=5) == weighted_fusion(rankings, [0.3, 0.7], "zscore")[:5]
    with pytest.raises(ValueError, match="normalisation"):
        HybridRetriever(embedder, [handbook], normalisation="rank")


def test_a_dense_weight_of_one_keeps_the_dense_order(embedder, handbook):
    query = QUERIES[1]
    dense_order = [hit.chunk_id for hit in handbook[0].search(embedder.embed([query])[0], 3)]
    retriever = HybridRetriever(embedder, [handbook], depth=3, fusion="weighted", dense_weight=1)
    assert [hit.chunk_id for hit in retriever.search(query, k=3)] == dense_order


def test_only_the_knowledge_bases_given_are_searched(embedder, handbook, engineering):
    handbook_only = HybridRetriever(embedder, [handbook])
    found = {hit.chunk_id for hit in handbook_only.search(QUERIES[1], k=10)}
    assert found and found <= set(HANDBOOK)
    both = HybridRetriever(embedder, [handbook, engineering])
    assert both.search(QUERIES[1], k=1)[0].chunk_id == 12


def test_search_embeds_the_query_once(embedder, handbook, engineering):
    embedder.calls.clear()
    HybridRetriever(embedder, [handbook, engineering]).search(QUERIES[0], k=3)
    assert embedder.calls == [1]


def test_search_many_embeds_one_batch_and_matches_search(embedder, handbook, engineering):
    retriever = HybridRetriever(embedder, [handbook, engineering], fusion="weighted")
    embedder.calls.clear()
    batch = retriever.search_many(QUERIES, k=4)
    assert embedder.calls == [len(QUERIES)]
    assert batch == [retriever.search(query, k=4) for query in QUERIES]


def test_k_larger_than_depth_still_returns_k_hits(embedder, handbook):
    assert len(HybridRetriever(embedder, [handbook], depth=1).search("leave days", k=4)) == 4


def test_it_rejects_an_unknown_fusion_or_a_bad_weight(embedder, handbook):
    with pytest.raises(ValueError, match="fusion"):
        HybridRetriever(embedder, [handbook], fusion="borda")
    with pytest.raises(ValueError, match="dense weight"):
        HybridRetriever(embedder, [handbook], fusion="weighted", dense_weight=1.5)
    with pytest.raises(ValueError, match="depth"):
        HybridRetriever(embedder, [handbook], depth=0)


def passages_search(retriever: HybridRetriever):
    """search(query, k) -> passages, the shape knowledge.services gives the LangChain retriever."""

    def search(query: str, k: int) -> list[Passage]:
        return [
            Passage(
                chunk_id=hit.chunk_id,
                text=HANDBOOK[hit.chunk_id],
                score=hit.score,
                document_id=100 + hit.chunk_id,
                document_title="Staff handbook",
                page=hit.chunk_id,
                knowledge_base_id=7,
            )
            for hit in retriever.search(query, k)
        ]

    return search


def test_the_langchain_retriever_returns_documents_with_citation_metadata(embedder, handbook):
    search = passages_search(HybridRetriever(embedder, [handbook]))
    documents = KnowledgeBaseRetriever(search=search, k=2).invoke(QUERIES[0])
    assert len(documents) == 2
    first = documents[0]
    assert isinstance(first, Document)
    assert first.page_content == HANDBOOK[1]
    assert first.id == "1"
    assert first.metadata == {
        "chunk_id": 1,
        "document_id": 101,
        "document_title": "Staff handbook",
        "page": 1,
        "score": pytest.approx(search(QUERIES[0], 2)[0].score),
        "knowledge_base_id": 7,
    }


class EnglishOnlyEmbedder(CountingEmbedder):
    """The counting embedder, declaring that it covers English only (as all-MiniLM-L6-v2)."""

    def __init__(self) -> None:
        super().__init__()
        self.languages = frozenset({"en"})


def test_a_query_in_a_language_the_model_lacks_is_ranked_by_bm25_alone():
    embedder = EnglishOnlyEmbedder()
    corpus = {
        1: "员工每年享有十五天带薪年假。",
        2: "報銷須在三十天內申請。",
        3: "Leave is 15 days.",
    }
    dense, sparse = index_pair(embedder, corpus)
    embedder.calls.clear()
    retriever = HybridRetriever(embedder, [(dense, sparse)], fusion="weighted", dense_weight=0.5)
    hits = retriever.search("报销需要多久内申请？", k=3)  # Simplified query, Traditional text
    assert embedder.calls == []  # not embedded: its cosine would be noise
    assert [hit.chunk_id for hit in hits] == [
        hit.chunk_id for hit in sparse.search("报销需要多久内申请？", 3)
    ]
    assert hits[0].chunk_id == 2
    retriever.search("how long is leave", k=3)
    assert embedder.calls == [1]  # an English query is embedded and fused as before
