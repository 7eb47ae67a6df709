"""The language-aware text analysis shared by indexing, answering and judging."""

from __future__ import annotations

import pytest

from retrieval.text import (
    CHUNK_SEPARATORS,
    fold,
    language_of,
    reply_language,
    split_sentences,
    word_count,
)


def test_it_splits_chinese_sentences_at_chinese_punctuation():
    text = "本规定适用于全体员工。年假为十五天！病假需要证明吗？加班须经批准；否则不计。"
    assert split_sentences(text) == [
        "本规定适用于全体员工。",
        "年假为十五天！",
        "病假需要证明吗？",
        "加班须经批准；",
        "否则不计。",
    ]


def test_closing_quotes_stay_with_their_sentence():
    assert split_sentences("他说：“明天放假。”大家都很高兴。") == [
        "他说：“明天放假。”",
        "大家都很高兴。",
    ]


def test_an_ellipsis_ends_a_chinese_sentence():
    assert split_sentences("等待审批……审批通过后即可报销。") == [
        "等待审批……",
        "审批通过后即可报销。",
    ]


def test_english_abbreviations_initials_and_decimals_do_not_end_sentences():
    text = "Dr. Smith paid 3.5 dollars, e.g. for tea. J. R. R. Tolkien wrote it. Then he left."
    assert split_sentences(text) == [
        "Dr. Smith paid 3.5 dollars, e.g. for tea.",
        "J. R. R. Tolkien wrote it.",
        "Then he left.",
    ]


def test_mixed_english_and_chinese_split_at_both_kinds_of_punctuation():
    assert split_sentences("Leave is 25 days. 年假为二十五天。Ask HR first.") == [
        "Leave is 25 days.",
        "年假为二十五天。",
        "Ask HR first.",
    ]


def test_wrapped_chinese_lines_join_without_a_space():
    text = "员工每年享有十五天带薪年假，入职满一年后\n开始计算，未休完的年假可以顺延到下一年。"
    assert split_sentences(text) == [text.replace("\n", "")]


def test_a_short_chinese_line_before_a_paragraph_is_a_heading():
    assert split_sentences("第三章 休假\n员工每年享有十五天带薪年假，须提前申请。") == [
        "第三章 休假",
        "员工每年享有十五天带薪年假，须提前申请。",
    ]


def test_a_citation_after_the_full_stop_stays_with_its_sentence():
    assert split_sentences("年假为十五天。[1] 病假另计。[2]") == [
        "年假为十五天。[1]",
        "病假另计。[2]",
    ]


def test_text_without_sentence_punctuation_is_one_sentence():
    assert split_sentences("没有标点的一段文字 而且还有空格") == ["没有标点的一段文字 而且还有空格"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "😀😀", "。。。", "שלום עולם", "?"])
def test_odd_text_does_not_break_the_splitter(text):
    assert all(sentence.strip() for sentence in split_sentences(text))


def test_folding_makes_traditional_simplified_and_full_width_ascii():
    assert fold("臺灣員工的年假") == "台湾员工的年假"
    assert fold("ＶＰＮ　帳號１２３") == "VPN 帐号123"
    assert fold("plain English") == "plain English"


def test_words_count_chinese_characters_two_to_a_word():
    assert word_count("The leave is long") == 4
    assert word_count("员工年假十五天") == 4  # seven characters, about four words
    assert word_count("iPhone手机") == 2


def test_the_language_of_a_text_is_its_main_script():
    assert language_of("年假有多少天？") == "zh"
    assert language_of("How many days of leave?") == "en"
    assert language_of("VPN怎么连接？") == "zh"
    assert language_of("What does 年假 mean in the handbook?") == "en"
    assert language_of("😀") == "en"


def test_replies_follow_the_question_script():
    assert reply_language("年假有幾天？") == "zh-hant"
    assert reply_language("年假有几天？") == "zh-hans"
    assert reply_language("How long is leave?") == "en"


def test_chunks_may_end_at_chinese_sentence_punctuation():
    assert {"\u3002", "\uff01", "\uff1f", "\uff1b"} <= set(CHUNK_SEPARATORS)


def test_a_line_wrapped_after_chinese_punctuation_joins_without_a_space():
    text = "支持的格式有 PDF、Word（DOCX）、电子邮件（EML）、\n图片（PNG、JPEG）和纯文本。"
    assert split_sentences(text) == [text.replace("\n", "")]
