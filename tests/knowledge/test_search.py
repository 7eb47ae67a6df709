"""search.search_passages: the knowledge-base filter, access re-checked at the read, rerankers."""

from __future__ import annotations

import pytest

from knowledge import access, components, documents, search
from knowledge.models import Chunk
from retrieval.rerank import NoReranker, WindowReranker
from tests.factories import indexed_text, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db

BASES = 12
QUERY = "quarterly travel budget approval"


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"  # a real, weightless embedder
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.RAG_RERANKER_MODEL = ""


@pytest.fixture
def many_bases():
    """Twelve knowledge bases, each with a document that matches the query well."""
    bases = []
    for number in range(BASES):
        knowledge_base = make_knowledge_base(f"team-{number}")
        indexed_text(
            knowledge_base,
            f"budget-{number}.md",
            f"# Team {number}\n\nThe quarterly travel budget of team {number} needs approval "
            f"from its director. Travel budget approval takes {number + 2} days.\n",
        )
        bases.append(knowledge_base)
    return bases


def knowledge_base_ids(passages) -> set[int]:
    return {passage.knowledge_base_id for passage in passages}


def test_only_the_knowledge_bases_passed_in_are_searched(many_bases):
    chosen = many_bases[3:6]
    passages = search.search_passages(chosen, QUERY, top_k=50)
    assert knowledge_base_ids(passages) == {kb.pk for kb in chosen}
    everything = search.search_passages(many_bases, QUERY, top_k=50)
    assert knowledge_base_ids(everything) == {kb.pk for kb in many_bases}


def test_passages_carry_what_a_citation_needs(many_bases):
    passage = search.search_passages(many_bases[:1], "team 0 budget", top_k=1)[0]
    chunk = Chunk.objects.select_related("document").get(pk=passage.chunk_id)
    assert passage.document_id == chunk.document_id
    assert passage.document_title == chunk.document.title
    assert passage.text == chunk.text
    assert passage.heading_path == ("Team 0",)


def test_a_user_gets_nothing_from_bases_they_cannot_read(many_bases):
    member = make_user("member")
    readable = many_bases[::4]
    for knowledge_base in readable:
        knowledge_base.members.add(member)
    passages = search.search_passages(many_bases, QUERY, top_k=50, user=member)
    assert knowledge_base_ids(passages) == {kb.pk for kb in readable}


def test_access_is_checked_again_at_retrieval(many_bases):
    member = make_user("member")
    many_bases[0].members.add(member)
    resolved = access.readable_knowledge_bases(member)
    many_bases[0].members.remove(member)  # access revoked after the caller resolved it
    assert search.search_passages(resolved, QUERY, user=member) == []


def test_an_outsider_gets_no_passages(many_bases):
    outsider = make_user("outsider")
    assert search.search_passages(many_bases, QUERY, top_k=50, user=outsider) == []


def test_disabled_documents_are_not_returned(many_bases):
    document = many_bases[1].documents.get()
    documents.set_document_enabled(document, False)
    passages = search.search_passages(many_bases[:3], QUERY, top_k=50)
    assert knowledge_base_ids(passages) == {many_bases[0].pk, many_bases[2].pk}


def test_top_k_bounds_the_results(many_bases):
    assert len(search.search_passages(many_bases, QUERY, top_k=4)) == 4
    assert search.search_passages(many_bases, QUERY, top_k=0) == []
    assert search.search_passages(many_bases, "   ") == []


def test_the_reranker_is_chosen_by_its_setting(settings):
    assert isinstance(components.get_reranker(), NoReranker)
    settings.RAG_RERANKER_MODEL = "window"
    assert isinstance(components.get_reranker(), WindowReranker)


def test_the_window_reranker_keeps_the_filter(settings, many_bases):
    settings.RAG_RERANKER_MODEL = "window"
    settings.RAG_RERANK_DEPTH = 30
    chosen = many_bases[5:8]
    passages = search.search_passages(chosen, QUERY, top_k=5)
    assert passages and knowledge_base_ids(passages) <= {kb.pk for kb in chosen}
    scores = [passage.score for passage in passages]
    assert scores == sorted(scores, reverse=True)


def test_weighted_and_rrf_fusion_both_rank_the_best_match_first(settings):
    knowledge_base = make_knowledge_base()
    policies = {
        "travel.md": "# Travel\n\nFlights are booked through the travel desk two weeks ahead.\n",
        "leave.md": "# Leave\n\nParental leave is sixteen weeks at full pay for every parent.\n",
        "laptops.md": "# Laptops\n\nLaptops are replaced every three years by the IT desk.\n",
    }
    for name, text in policies.items():
        indexed_text(knowledge_base, name, text)
    for fusion in ("weighted", "rrf"):
        settings.RAG_FUSION = fusion
        passages = search.search_passages([knowledge_base], "parental leave weeks", top_k=3)
        assert passages[0].document_title == "Leave"


def test_bm25_finds_a_passage_deep_in_a_document_by_its_title_and_heading():
    from knowledge import indexing, ingestion
    from tests.factories import add_text

    knowledge_base = make_knowledge_base()
    filler = " ".join(f"Rule {n} of the handbook is kept as written." for n in range(60))
    taxis = "Taxis are paid back with a receipt."
    expenses = add_text(
        knowledge_base, "h1.txt", f"{filler}\n\n{taxis}", title="Expense claims handbook"
    )
    safety = "# Safety rules\n\n## Night travel\n\nTaxis are safer at night. Taxis wait outside.\n"
    documents_ = [
        ingestion.ingest_document(expenses.pk),
        indexed_text(knowledge_base, "s.md", safety),
    ]
    assert documents_[0].title == "Expense claims handbook"  # given, so kept over the file's own
    assert documents_[1].title == "Safety rules"  # the file's own over the file name
    deep = Chunk.objects.get(document=expenses, text__contains="Taxis")
    assert deep.order > 0 and "Expense" not in deep.text

    knowledge_base.refresh_from_db()  # its published version
    sparse = indexing.loaded_index(knowledge_base).sparse
    assert sparse.search("expense claims taxis", 1)[0].chunk_id == deep.pk
    night = Chunk.objects.get(document=documents_[1], text__contains="Taxis")
    assert sparse.search("night travel taxis", 1)[0].chunk_id == night.pk  # by its heading
