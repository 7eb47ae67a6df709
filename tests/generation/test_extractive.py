"""The extractive generator with the hashing embedder (a real, weightless embedder)."""

from __future__ import annotations

from generation.extractive import ExtractiveGenerator
from retrieval.embedders import HashingEmbedder
from retrieval.types import Passage

EMBEDDER = HashingEmbedder(dimension=256)
TRAVEL = Passage(
    1,
    "Travel policy\nEmployees book flights through the travel desk at least two weeks ahead. "
    "Economy class is the rule for flights under six hours.",
    1.0,
    document_id=1,
    document_title="Travel policy",
    page=2,
)
EXPENSES = Passage(
    2,
    "Receipts for meals above 25 euros must be uploaded within 30 days. Hotels are booked by "
    "the travel desk.",
    0.9,
    document_id=2,
    document_title="Expenses",
    page=7,
)


def generator(**options) -> ExtractiveGenerator:
    return ExtractiveGenerator(EMBEDDER.embed, **options)


def test_answers_with_the_best_sentence_and_its_source_number():
    answer = generator().answer("How far ahead must employees book flights?", [EXPENSES, TRAVEL])
    assert answer.found
    assert answer.text.startswith(
        "Employees book flights through the travel desk at least two weeks ahead [2]."
    )


def test_every_sentence_of_the_answer_is_cited():
    answer = generator(max_sentences=3).answer("Who books hotels and flights?", [TRAVEL, EXPENSES])
    for sentence in answer.sentences:
        assert f"{sentence.text.rstrip('.')} [{sentence.n}]." in answer.text


def test_an_unrelated_question_is_not_found():
    answer = generator().answer("What is the capital of Mongolia?", [TRAVEL, EXPENSES])
    assert not answer.found
    assert answer.text == "The answer was not found in the documents."


def test_headings_are_not_answers():
    answer = generator().answer("What is the travel policy?", [TRAVEL])
    assert "Travel policy" not in [s.text for s in answer.sentences]


def test_table_rows_are_not_quoted_as_answers():
    table = Passage(
        3,
        "| search | nDCG@10 |\n|---|---|\n| hybrid, weighted fusion (the default) | 0.726 |\n"
        "Search fuses the two lists by weighted fusion by default, with equal weights.",
        1.0,
        document_id=3,
        document_title="How search works",
    )
    answer = generator(max_sentences=3).answer("Which fusion does search use by default?", [table])
    assert answer.found
    assert all("|" not in sentence.text for sentence in answer.sentences)
    assert "weighted fusion by default" in answer.text


def test_no_passages_is_not_found():
    assert not generator().answer("Anything?", []).found


def test_at_most_max_sentences():
    answer = generator(max_sentences=1, threshold=0.0, relative=0.0).answer(
        "travel desk flights hotels", [TRAVEL, EXPENSES]
    )
    assert len(answer.sentences) == 1
