"""The extractive generator with the hashing embedder (a real, weightless embedder)."""

from __future__ import annotations

import pytest

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


LEAVE_ZH = Passage(
    4,
    "第三章 休假\n员工入职满一年后，每年享有十五天带薪年假。年假须提前两周通过人事系统申请。"
    "病假须提供医院证明。",
    1.0,
    document_id=4,
    document_title="员工手册",
    page=3,
)
LEAVE_ZH_HANT = Passage(
    5,
    "員工入職滿一年後，每年享有十五天帶薪年假。年假須提前兩週透過人事系統申請。",
    1.0,
    document_id=5,
    document_title="員工手冊",
    page=1,
)


def test_a_chinese_question_is_answered_with_the_sentence_that_states_the_fact():
    answer = generator().answer("员工每年有几天带薪年假？", [LEAVE_ZH])
    assert answer.found
    assert answer.text.startswith("员工入职满一年后，每年享有十五天带薪年假[1]。")


def test_a_simplified_question_finds_a_traditional_sentence():
    answer = generator().answer("年假需要提前多久申请？", [LEAVE_ZH_HANT])
    assert answer.found
    assert "年假須提前兩週透過人事系統申請[1]。" in answer.text


def test_an_unrelated_chinese_question_is_not_found_in_chinese():
    for question, reply in (
        ("公司食堂今天中午吃什么？", "文档中没有找到答案。"),
        ("公司食堂今天中午吃什麼？", "文件中沒有找到答案。"),
    ):
        answer = generator().answer(question, [LEAVE_ZH, TRAVEL])
        assert not answer.found
        assert answer.text == reply


def test_a_how_many_question_prefers_the_sentence_with_a_number():
    passage = Passage(
        6,
        "Parental leave is paid leave for new parents. Parents get twelve weeks of paid "
        "parental leave. Parental leave must be requested through the HR portal.",
        1.0,
        document_id=6,
        document_title="Leave",
    )
    answer = generator(max_sentences=1).answer("How many weeks of parental leave?", [passage])
    assert answer.text == "Parents get twelve weeks of paid parental leave [1]."


def test_markup_is_never_quoted():
    passage = Passage(
        7,
        "Read the **on-call guide** at [the wiki](https://wiki.example.com/oncall) before your "
        "first shift `today`. See https://example.com/x for the schedule of on-call shifts.",
        1.0,
        document_id=7,
        document_title="On call",
    )
    answer = generator().answer("What should I read before my first on-call shift?", [passage])
    assert answer.found
    assert "Read the on-call guide at the wiki before your first shift today [1]." in answer.text
    for mark in ("**", "](", "http", "`"):
        assert mark not in answer.text


@pytest.mark.parametrize(
    "question",
    ["年", "?", "😀😀", "ＶＰＮ怎么连接", "مرحبا كيف حالك", "no punctuation at all here"],
)
def test_odd_questions_get_an_answer_or_not_found_without_error(question):
    answer = generator().answer(question, [LEAVE_ZH, TRAVEL])
    assert answer.text


def test_passages_without_sentence_punctuation_still_answer():
    passage = Passage(
        8,
        "员工入职满一年后每年享有十五天带薪年假 年假须提前两周申请",
        1.0,
        document_id=8,
        document_title="无标点",
    )
    assert generator().answer("员工每年有几天带薪年假", [passage]).found
