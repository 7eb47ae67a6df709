"""Chunking: token budgets, overlap, and the position of every chunk in its source."""

import pytest

from retrieval.chunking import chunk_sections, sparse_text
from retrieval.embedders import HashingEmbedder, SentenceTransformerEmbedder
from retrieval.types import Section

embedder = HashingEmbedder()


def chunk(sections, size=50, overlap=10, limit=254):
    return chunk_sections(
        sections, embedder.count_tokens, embedder.split_tokens, size, overlap, limit
    )


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n))


def test_a_short_section_is_one_chunk_with_its_page_and_heading():
    [only] = chunk([Section("Hello there.", page=3, heading_path=("Intro",))])
    assert (only.text, only.page, only.heading_path, only.order) == (
        "Hello there.",
        3,
        ("Intro",),
        0,
    )


def test_chunks_respect_the_budget_and_overlap():
    chunks = chunk([Section(words(500))], size=50, overlap=10)
    assert all(c.token_count <= 50 for c in chunks)
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert set(first[-5:]) & set(second[:15])  # consecutive chunks share words
    covered = {w for c in chunks for w in c.text.split()}
    assert covered == set(words(500).split())


def test_chunks_never_cross_pages_and_are_numbered_in_reading_order():
    chunks = chunk([Section(words(120), page=1), Section(words(120, 1000), page=2)])
    assert [c.order for c in chunks] == list(range(len(chunks)))
    assert all(("w1000" in c.text) <= (c.page == 2) for c in chunks)
    assert {c.page for c in chunks} == {1, 2}


def test_run_on_text_without_separators_is_cut_within_the_limit():
    chunks = chunk([Section("x" * 5000 + " " + words(400))], size=60, overlap=0, limit=60)
    assert chunks and all(c.token_count <= 60 for c in chunks)


def test_overlap_must_be_smaller_than_the_chunk():
    with pytest.raises(ValueError):
        chunk([Section("a b c")], size=10, overlap=10)


@pytest.mark.slow
def test_real_tokenizer_chunks_fit_all_minilm(settings):
    model = SentenceTransformerEmbedder(settings.RAG_EMBEDDING_MODEL)
    text = (
        "Grundlagen der Topologie: offene Mengen, Umgebungen und Stetigkeit. " * 200 + "数据" * 3000
    )
    chunks = chunk_sections(
        [Section(text)], model.count_tokens, model.split_tokens, 254, 40, model.max_tokens
    )
    assert max(model.count_tokens([c.text for c in chunks])) <= model.max_tokens == 254
    assert model.embed([c.text for c in chunks[:3]]).shape == (3, 384)


def test_bm25_holds_a_chunk_after_its_title_and_headings_once():
    text = "Taxis are refunded with a receipt."
    assert sparse_text(text, "Expense handbook", ["Travel", "Taxis"]) == (
        "Expense handbook\nTravel\n" + text  # "Taxis" is in the text already
    )
    first = "Expense handbook\n\nThis handbook says what is refunded."
    assert sparse_text(first, "Expense handbook", ["Expense handbook"]) == first
    assert sparse_text(text) == text
    assert (
        sparse_text("出租车凭发票报销。", "报销手册", ["差旅"])
        == "报销手册\n差旅\n出租车凭发票报销。"
    )
