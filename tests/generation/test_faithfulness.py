"""Answer-quality metrics against hand-computed cases, and both judges on small real examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from generation.faithfulness import (
    abstains,
    citation_quality,
    embedding_similarity,
    faithfulness,
    rouge_l,
    split_claims,
    token_f1,
)
from generation.judges import (
    EmbeddedJudge,
    LlmJudge,
    cached_embed,
    make_judge,
    parse_json_reply,
)
from generation.prompts import NOT_FOUND_ANSWER
from retrieval.embedders import HashingEmbedder
from tests.conftest import SHARED_DATA

PASSAGES = [
    "The Eiffel Tower is in Paris.",
    "The tower was completed in 1889.",
    "Bananas are a yellow fruit.",
]


@pytest.fixture
def judge() -> EmbeddedJudge:
    """The embedded judge on the weightless hashing embedder: lexical, fast, deterministic."""
    return EmbeddedJudge(HashingEmbedder(256).embed)


# --- Correctness ----------------------------------------------------------------------------------


def test_token_f1_follows_the_squad_definition():
    # normalised: "cat sat on mat" vs "cat sat": 2 shared, P = 2/4, R = 2/2, F1 = 2/3
    assert token_f1("The cat sat on the mat!", "a cat sat") == pytest.approx(2 / 3)


def test_token_f1_counts_repeated_tokens_once_per_occurrence():
    # "to to be" vs "to be be": shared multiset {to, be} = 2; P = R = 2/3
    assert token_f1("to to be", "to be be") == pytest.approx(2 / 3)


def test_token_f1_of_empty_answers():
    assert token_f1("", "") == 1.0
    assert token_f1("the", "Paris") == 0.0  # "the" normalises to nothing


def test_rouge_l_is_the_lcs_f_measure():
    # LCS "the cat on the mat" = 5 of 6 tokens on both sides: F = 5/6
    assert rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(5 / 6)


def test_embedding_similarity_is_the_cosine_of_the_two_vectors():
    vectors = {"a": [1.0, 0.0], "b": [1.0, 1.0]}

    def embed(texts):
        return np.array([vectors[t] for t in texts])

    assert embedding_similarity("a", "b", embed) == pytest.approx(1 / math.sqrt(2))
    assert embedding_similarity("same text", "same text", HashingEmbedder().embed) == (
        pytest.approx(1.0)
    )


# --- Claims and faithfulness ----------------------------------------------------------------------


def test_claims_drop_citation_markers_bullets_and_headings():
    answer = "Summary:\n- The tower is in Paris [1].\n- It opened in 1889 [2]; it is tall [1]."
    assert split_claims(answer) == ["The tower is in Paris.", "It opened in 1889", "it is tall."]


def test_a_bare_short_answer_is_one_claim():
    assert split_claims("Serj Tankian") == ["Serj Tankian"]


def test_faithfulness_is_the_share_of_supported_claims(judge):
    answer = "The Eiffel Tower is in Paris. It was built from cheese and chocolate."
    result = faithfulness(answer, PASSAGES, judge)
    assert result.score == 0.5
    assert [v.supported for v in result.verdicts] == [True, False]
    assert "cheese" in result.verdicts[1].reason
    assert result.judge == "embedded"


def test_an_answer_that_only_says_the_sources_lack_the_answer_has_no_claims(judge):
    result = faithfulness("The passages do not mention its height.", PASSAGES, judge)
    assert result.score is None
    assert result.support == 1.0


def test_the_not_found_answer_has_no_claims_and_no_citation_scores(judge):
    assert faithfulness(NOT_FOUND_ANSWER, PASSAGES, judge).score is None
    result = citation_quality(NOT_FOUND_ANSWER, PASSAGES, judge)
    assert (result.recall, result.precision, result.sentences) == (None, None, [])


def test_abstains_only_when_every_sentence_says_what_is_missing():
    assert abstains(NOT_FOUND_ANSWER)
    assert abstains("The context does not mention the date. It is not provided [2].")
    assert not abstains("The tower was completed in 1889 [2]. The passages do not say who paid.")
    assert not abstains("")


def test_an_abstaining_sentence_beside_a_claim_is_left_out_of_citation_recall(judge):
    answer = "The tower was completed in 1889 [2]. The passages do not say who paid for it."
    result = citation_quality(answer, PASSAGES, judge)
    assert result.recall == 1.0
    assert [row["sentence"] for row in result.sentences] == ["The tower was completed in 1889."]


# --- Citations (ALCE) -----------------------------------------------------------------------------


def test_citation_recall_and_precision_follow_alce(judge):
    answer = (
        "The Eiffel Tower is in Paris [1][3]. The tower was completed in 1889 [2]. "
        "It is made of blue cheese and chocolate [1]. Paris is in Europe."
    )
    result = citation_quality(answer, PASSAGES, judge)
    # Supported with its citations: sentences 1 and 2 of 4 -> recall 1/2. Citations: [1] needed,
    # [3] irrelevant ([1] alone suffices), [2] needed, [1] of the cheese sentence unsupported.
    assert result.recall == 0.5
    assert result.precision == 0.5
    assert [row["relevant_citations"] for row in result.sentences] == [1, 1, 0, 0]
    assert result.sentences[3]["reason"] == "no citation"


def test_a_citation_beyond_the_passages_counts_as_irrelevant(judge):
    result = citation_quality("The tower was completed in 1889 [7].", PASSAGES, judge)
    assert (result.recall, result.precision) == (0.0, 0.0)
    assert result.sentences[0]["reason"] == "no valid citation"


def test_an_answer_without_citations_has_no_citation_precision(judge):
    result = citation_quality("The tower was completed in 1889.", PASSAGES, judge)
    assert result.recall == 0.0
    assert result.precision is None


def test_cached_embed_embeds_each_text_once_and_forgets_the_oldest():
    embedder = HashingEmbedder(64)
    asked: list[str] = []

    def embed(texts):
        asked.extend(texts)
        return embedder.embed(texts)

    cached = cached_embed(embed, max_texts=3)
    first = cached(["a b", "c d", "a b"])
    np.testing.assert_array_equal(first, embedder.embed(["a b", "c d", "a b"]))
    np.testing.assert_array_equal(cached(["c d", "e f"]), embedder.embed(["c d", "e f"]))
    assert asked == ["a b", "c d", "e f"]  # each text embedded once
    cached(["g h"])  # a fourth text: the least recently used ("a b") is forgotten
    cached(["a b"])
    assert asked == ["a b", "c d", "e f", "g h", "a b"]
    assert cached([]).shape[0] == 0


def test_a_short_claim_is_judged_by_its_words_more_than_by_its_cosine():
    """A two-word claim whose words are all in the context: its low cosine with the context's
    sentences counts a quarter (2 of 8 content words), so it stays well supported."""
    embed = HashingEmbedder(256).embed
    claim, context = ["Gustave Eiffel"], ["The tower was designed by the engineer Gustave Eiffel."]
    short = EmbeddedJudge(embed).verify(claim, context)[0]
    flat = EmbeddedJudge(embed, short_claim_words=1).verify(claim, context)[0]
    assert short.supported
    assert short.score > flat.score
    penalty = -math.log(flat.score)
    assert -math.log(short.score) == pytest.approx(penalty * 2 / 8)


# --- The embedded judge on real labelled answers (RAGTruth QA, HaluEval QA) -----------------------


def _rows(name: str, ids: set[str]) -> dict[str, dict]:
    path = SHARED_DATA / "faithfulness" / name
    assert path.exists(), f"{path} is missing: these tests read ../shared/data"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    return {row["id"]: row for row in rows if row["id"] in ids}


@pytest.mark.slow
def test_the_embedded_judge_ranks_real_hallucinations_below_faithful_answers(minilm_embed):
    faithful = "halueval-qa-00771-right"
    invented = "halueval-qa-00771-hallucinated"
    rows = _rows("halueval_qa_dev.jsonl", {faithful, invented})
    judge = EmbeddedJudge(minilm_embed)
    support = {
        key: faithfulness(row["answer"], [row["context"]], judge, row["question"]).support
        for key, row in rows.items()
    }
    assert support[faithful] > support[invented]


@pytest.fixture(scope="module")
def minilm_embed():
    from django.conf import settings

    from retrieval.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(settings.RAG_EMBEDDING_MODEL).embed


# --- The LLM judge through a real OpenAI-protocol server ------------------------------------------


def _client(llm_server):
    from generation.client import VllmClient

    return VllmClient(llm_server.url, "test-model", max_retries=0)


def test_the_llm_judge_reads_json_inside_prose_and_code_fences(llm_server):
    from tests.openai_server import Reply

    llm_server.script(
        Reply(
            text='Here are the claims:\n```json\n{"claims": ["The tower is in Paris.", '
            '"The tower is made of cheese."]}\n```'
        ),
        Reply(
            text='{"verdicts": [{"statement": 1, "verdict": "yes", "reason": "passage 1"}, '
            '{"statement": 2, "verdict": "no", "reason": "not in the context"},]}'
        ),
    )
    result = faithfulness(
        "Paris has the tower; it is cheese.", PASSAGES, LlmJudge(_client(llm_server))
    )
    assert result.score == 0.5
    assert [v.reason for v in result.verdicts] == ["passage 1", "not in the context"]
    prompts = [body["messages"][0]["content"] for body in llm_server.chat_requests()]
    assert "Break the answer" in prompts[0] and "The Eiffel Tower is in Paris." in prompts[1]


def test_the_llm_judge_keeps_the_complete_verdicts_of_a_truncated_reply(llm_server):
    from tests.openai_server import Reply

    llm_server.script(
        Reply(
            text='{"verdicts": [{"statement": 1, "verdict": "yes", "reason": "stated"}, '
            '{"statement": 2, "verd'
        ),
    )
    verdicts = LlmJudge(_client(llm_server)).verify(["A claim.", "Another claim."], PASSAGES)
    assert [v.supported for v in verdicts] == [True, False]
    assert "did not give a verdict" in verdicts[1].reason


def test_the_llm_judge_falls_back_to_sentences_when_the_claims_reply_is_not_json(llm_server):
    from tests.openai_server import Reply

    llm_server.script(Reply(text="Sure! The answer has two claims."))
    claims = LlmJudge(_client(llm_server)).extract_claims("The tower is in Paris. It is tall.")
    assert claims == ["The tower is in Paris.", "It is tall."]


def test_json_repair_closes_a_truncated_list():
    assert parse_json_reply('{"claims": ["one", "two", "thr') == {"claims": ["one", "two"]}
    assert parse_json_reply("no json here") is None


def test_auto_picks_the_llm_judge_only_when_a_client_is_configured(llm_server):
    embed = HashingEmbedder().embed
    assert make_judge("auto", embed=embed, client=None).name == "embedded"
    assert make_judge("auto", embed=embed, client=_client(llm_server)).name == "llm"


def test_a_reference_is_stated_across_case_width_and_script():
    from generation.faithfulness import states_reference

    assert states_reference("《战国无双3》是由光荣和ω-force开发的[1]。", ["光荣和ω-force"])
    assert states_reference("由光榮和Ω-FORCE開發。", ["光荣和ω-force"])  # Traditional, upper case
    assert states_reference("It lasts ２５ days [1].", ["25 days"])  # full-width digits
    assert not states_reference("It lasts 52 days [1].", ["25 days"])
    assert not states_reference("anything", [""])


def test_token_f1_counts_chinese_by_character():
    from generation.faithfulness import token_f1

    assert token_f1("光荣和ω-force", "光荣和ω-force") == 1.0
    assert 0 < token_f1("由光荣开发", "光荣和ω-force") < 1
    # English stays by word, articles dropped: 3 shared of 4 and 3 words, F1 = 6/7
    assert token_f1("Keep your microphone muted", "keep the microphone muted") == pytest.approx(
        6 / 7
    )


def test_chinese_not_found_replies_are_abstentions():
    from generation.faithfulness import abstains

    assert abstains("文档中没有找到答案。")
    assert abstains("文件中沒有找到答案。")
    assert not abstains("员工每年享有十五天带薪年假[1]。")
