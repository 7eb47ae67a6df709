"""Citation markers: parsed, checked against the passages, mapped to document, page and chunk."""

from __future__ import annotations

from generation.citations import check_citations, find_citations
from retrieval.text import split_sentences
from retrieval.types import Passage

PASSAGES = [
    Passage(100 + n, f"text {n}", 1.0, document_id=n, document_title=f"Doc {n}", page=n)
    for n in range(1, 4)
]


def test_finds_single_list_range_and_adjacent_markers():
    text = "A [1]. B [2, 3]. C [1-3]. D [1][2]. E [Source 2]. F [2–3]."
    assert find_citations(text) == [1, 2, 3, 1, 2, 3, 1, 2, 2, 2, 3]


def test_ignores_brackets_that_are_not_citations():
    assert find_citations("See [note] and [a, b] and array[i] and [].") == []


def test_citations_map_to_document_page_and_chunk_in_order_of_first_use():
    checked = check_citations("B is true [2]. A is true [1, 2].", PASSAGES)
    assert [c.n for c in checked.citations] == [2, 1]
    assert checked.citations[0].as_dict() == {
        "n": 2,
        "document_id": 2,
        "document_title": "Doc 2",
        "page": 2,
        "chunk_id": 102,
        "text": "text 2",
    }


def test_citations_to_missing_sources_are_dropped_and_reported():
    checked = check_citations("A real claim is here [1, 7]. An invented one is here [9].", PASSAGES)
    assert checked.answer == "A real claim is here [1]. An invented one is here."
    assert checked.invalid_citations == [7, 9]
    assert [c.n for c in checked.citations] == [1]
    assert checked.uncited_sentences == ["An invented one is here."]


def test_a_range_keeps_its_valid_part():
    checked = check_citations("Water is wet everywhere [2-5].", PASSAGES)
    assert checked.answer == "Water is wet everywhere [2, 3]."
    assert checked.invalid_citations == [4, 5]


def test_sentences_without_citations_are_flagged():
    answer = "The policy covers travel [1]. It also covers meals and hotels. In short:\n- Yes [2]."
    checked = check_citations(answer, PASSAGES)
    assert checked.uncited_sentences == ["It also covers meals and hotels."]


def test_a_marker_after_the_full_stop_belongs_to_its_sentence():
    answer = "The policy covers all travel. [1] Meals are covered too. [2]"
    checked = check_citations(answer, PASSAGES)
    assert checked.uncited_sentences == []


def test_the_not_found_answer_is_not_an_uncited_claim():
    checked = check_citations("The answer was not found in the documents.", PASSAGES)
    assert checked.uncited_sentences == []
    assert checked.citations == []


def test_sentence_split_keeps_abbreviations_and_decimals():
    text = "Dr. Smith paid 3.5 euros, e.g. for tea. Then he left. The U.S. office closed."
    assert split_sentences(text) == [
        "Dr. Smith paid 3.5 euros, e.g. for tea.",
        "Then he left.",
        "The U.S. office closed.",
    ]


def test_sentence_split_of_pdf_text_drops_footnote_marks_and_parts_headings():
    text = (
        "INTRODUCTION\nThe Act was signed into law by\n1\nPresident Clinton on October 28, 1998."
        " It implements two treaties.\nDistance Education Study\nThe Office must report."
    )
    assert split_sentences(text) == [
        "INTRODUCTION",
        "The Act was signed into law by President Clinton on October 28, 1998.",
        "It implements two treaties.",
        "Distance Education Study",
        "The Office must report.",
    ]


def test_sources_are_renumbered_by_first_use_across_streamed_pieces():
    from generation.citations import CitationRenumberer

    renumber = CitationRenumberer(6)
    shown = [renumber.feed(piece) for piece in ("Leave is 25 days [5", "]. It accrues [3, 5", "].")]
    assert "".join(shown) + renumber.flush() == "Leave is 25 days [1]. It accrues [2, 1]."
    assert renumber.order() == [5, 3, 1, 2, 4, 6]
    assert renumber.renumbered("A [9] stays for the checker to drop.") == (
        "A [9] stays for the checker to drop."
    )
