"""Answer-quality metrics: claim splitting, RAGAS-style faithfulness, ALCE citation recall and
precision, and answer correctness (token F1, ROUGE-L, embedding similarity).

Faithfulness and citation quality need a judge that decides whether a passage supports a
statement: anything with the `Judge` protocol below (`generation.judges` holds an LLM judge and an
embedded judge that needs no LLM). The correctness metrics are pure functions of two strings
(embedding similarity takes an embed function).
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from retrieval.text import CJK_RANGES, fold, has_cjk, split_sentences, word_count

from .citations import find_citations

EmbedFunction = Callable[[Sequence[str]], np.ndarray]

# A citation marker as generation.citations reads them: [1], [1, 3], [2-4], [Source 1].
_CITATION = re.compile(
    r"\s*\[\s*(?:sources?\s*)?\d+(?:\s*[-\u2013,;]\s*(?:sources?\s*)?\d+)*\s*\]", re.I
)
_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one statement: supported or not, a support score in [0, 1] (higher
    means better supported), and the reason a person can read."""

    statement: str
    supported: bool
    score: float
    reason: str = ""


class Judge(Protocol):
    """What the faithfulness and citation metrics need of a judge."""

    name: str

    def extract_claims(self, answer: str, question: str = "") -> list[str]:
        """The answer's factual claims, each a self-contained statement."""
        ...

    def verify(
        self, statements: Sequence[str], passages: Sequence[str], question: str = ""
    ) -> list[Verdict]:
        """One verdict per statement: do the passages, taken together, support it? The question
        is background only (words that restate it are not new information)."""
        ...


# --- Splitting --------------------------------------------------------------------------------


def strip_citations(text: str) -> str:
    """The text without its [n] citation markers."""
    return _CITATION.sub("", text).strip()


_ABSTENTION = re.compile(
    r"\b(unable to answer|cannot be answered|can ?not answer|does not (?:provide|mention|"
    r"contain|specify|say|state|include)|do not (?:provide|mention|contain|specify|say|state|"
    r"include)|no (?:specific )?(?:information|mention|details?)|not (?:mentioned|provided|"
    r"specified|stated)|is not clear|not (?:be )?found in the (?:documents?|sources?|context|"
    r"passages?|provided))\b"
    # Chinese (Simplified and Traditional): "not found in the documents", "not mentioned", ...
    r"|(?:没有|沒有|未)(?:找到|提到|提及|说明|說明|提供)|无法回答|無法回答|(?:文档|文件|资料|資料)中(?:没有|沒有)",
    re.IGNORECASE,
)


def is_abstention(sentence: str) -> bool:
    """Whether a sentence only says what the sources do not contain ("The answer was not found
    in the documents.", "The context does not mention the date."): it claims nothing to verify."""
    return bool(_ABSTENTION.search(sentence))


def abstains(answer: str) -> bool:
    """Whether every sentence of an answer is an abstention (a "not found" answer)."""
    sentences = [strip_citations(s) for s in split_sentences(answer)]
    sentences = [s for s in sentences if s]
    return bool(sentences) and all(is_abstention(s) for s in sentences)


def split_claims(answer: str) -> list[str]:
    """Split an answer into claims without an LLM: its sentences and list items, with citation
    markers and list bullets removed, long sentences cut at semicolons, and pieces under three
    words dropped (headings, "Yes."). A short answer with no longer piece ("Serj Tankian") is
    one claim.

    RAGAS asks an LLM to break each sentence into atomic statements; sentences are the closest
    rule-based unit and what ALCE verifies.
    """
    claims = []
    for sentence in split_sentences(answer):
        for piece in re.split(r";\s+", strip_citations(_LIST_MARK.sub("", sentence))):
            piece = piece.strip().rstrip(":")
            if word_count(piece) >= 3:
                claims.append(piece)
    whole = strip_citations(answer)
    return claims or ([whole] if whole else [])


# --- Faithfulness (RAGAS) -----------------------------------------------------------------------


@dataclass
class FaithfulnessResult:
    """Faithfulness of one answer: the share of its claims that the context supports.

    score is None when the answer makes no claim (a refusal, an empty answer); support is the
    product of the claim scores (1.0 with no claims): the chance that every claim holds if
    claims are independent, a continuous version for ranking answers.
    """

    score: float | None
    support: float
    verdicts: list[Verdict]
    judge: str


def faithfulness(
    answer: str, passages: Sequence[str], judge: Judge, question: str = ""
) -> FaithfulnessResult:
    """Faithfulness = |claims supported by the retrieved context| / |claims| in [0, 1].

    The answer is split into claims by the judge, and each claim is verified against all the
    passages together. Returns a score of None for an answer without claims.

    Source: S. Es, J. James, L. Espinosa-Anke, S. Schockaert, "RAGAS: Automated Evaluation of
    Retrieval Augmented Generation", EACL 2024 demos (arXiv:2309.15217), section 3.
    """
    claims = judge.extract_claims(answer, question)
    verdicts = judge.verify(claims, passages, question) if claims else []
    if not verdicts:
        return FaithfulnessResult(None, 1.0, [], judge.name)
    score = sum(v.supported for v in verdicts) / len(verdicts)
    support = math.prod(v.score for v in verdicts)
    return FaithfulnessResult(score, support, verdicts, judge.name)


# --- Citation recall and precision (ALCE) -------------------------------------------------------


@dataclass
class CitationResult:
    """ALCE citation quality of one answer. recall and precision are None when the answer has
    no sentence (recall) or no citation (precision); sentences lists per-sentence details."""

    recall: float | None
    precision: float | None
    sentences: list[dict] = field(default_factory=list)
    judge: str = ""


def citation_quality(answer: str, passages: Sequence[str], judge: Judge) -> CitationResult:
    """Citation recall and precision as ALCE defines them, for an answer citing passages [1]..[n].

    Recall: the share of sentences whose cited passages, concatenated, support the sentence (a
    sentence without citations scores 0; a sentence that only says what the sources lack, see
    `is_abstention`, is not counted, so a "not found" answer has no recall). Precision: the
    share of citations that are relevant; a citation of a supported sentence with several
    citations is irrelevant when its passage alone does not support the sentence and the other
    cited passages still do; with one citation, it counts as relevant exactly when it supports
    the sentence. Citations of numbers outside 1..n
    count as irrelevant.

    Source: T. Gao, H. Yen, J. Yu, D. Chen, "Enabling Large Language Models to Generate Text with
    Citations", EMNLP 2023 (arXiv:2305.14627), section 2.3, and its `compute_autoais` code.
    """
    sentences = [s for s in split_sentences(answer) if strip_citations(s) and not is_abstention(s)]
    rows, supported, relevant, citations = [], 0, 0, 0
    for sentence in sentences:
        row = _cited_sentence(sentence, passages, judge)
        rows.append(row)
        supported += row["supported"]
        relevant += row["relevant_citations"]
        citations += len(row["citations"])
    return CitationResult(
        recall=supported / len(sentences) if sentences else None,
        precision=relevant / citations if citations else None,
        sentences=rows,
        judge=judge.name,
    )


def _cited_sentence(sentence: str, passages: Sequence[str], judge: Judge) -> dict:
    statement = strip_citations(sentence)
    cited = list(dict.fromkeys(find_citations(sentence)))
    valid = [n for n in cited if 1 <= n <= len(passages)]
    row = {"sentence": statement, "citations": cited, "supported": False, "reason": ""}
    row["relevant_citations"] = 0
    if not valid:
        row["reason"] = "no valid citation" if cited else "no citation"
        return row
    joint = judge.verify([statement], [passages[n - 1] for n in valid])[0]
    row.update(supported=joint.supported, reason=joint.reason)
    if not joint.supported:
        return row
    if len(valid) == 1:
        row["relevant_citations"] = 1
        return row
    row["relevant_citations"] = sum(
        _citation_needed(statement, n, valid, passages, judge) for n in valid
    )
    return row


def _citation_needed(
    statement: str, number: int, cited: list[int], passages: Sequence[str], judge: Judge
) -> bool:
    if judge.verify([statement], [passages[number - 1]])[0].supported:
        return True
    others = [passages[n - 1] for n in cited if n != number]
    return not judge.verify([statement], others)[0].supported


# --- Answer correctness -------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CJK_TOKEN = re.compile(rf"[{CJK_RANGES}]|[^\W{CJK_RANGES}]+")
_WORD_CHARACTERS = re.compile(r"[^\W_]+")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower-case, drop punctuation and the articles a/an/the,
    collapse white space."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    """The tokens F1 counts: SQuAD's normalised words, with Chinese text (folded to Simplified)
    counted character by character, as CMRC 2018's official evaluation does."""
    tokens = []
    for word in normalize_answer(fold(text)).split():
        if has_cjk(word):
            tokens.extend(_CJK_TOKEN.findall(word))
        else:
            tokens.append(word)
    return tokens


def token_f1(prediction: str, reference: str) -> float:
    """Token-level F1 between an answer and a reference answer, in [0, 1].

    Both are normalised (`normalize_answer`) and split into `answer_tokens`; with the multiset
    of shared tokens, precision = shared / prediction tokens and recall = shared / reference
    tokens. Two empty answers score 1.0, one empty answer 0.0.

    Source: P. Rajpurkar et al., "SQuAD: 100,000+ Questions for Machine Comprehension of Text",
    EMNLP 2016; the official evaluate-v2.0.py `compute_f1`; characters for Chinese as in Cui et
    al., "A Span-Extraction Dataset for Chinese Machine Reading Comprehension", EMNLP 2019.
    """
    predicted = answer_tokens(prediction)
    expected = answer_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    shared = sum((Counter(predicted) & Counter(expected)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def states_reference(answer: str, references: Sequence[str]) -> bool:
    """Whether the answer contains one of the reference answers, both folded (case, width,
    Traditional to Simplified) and without spaces or punctuation: CMRC-style containment."""
    text = _compact(answer)
    return any((ref := _compact(reference)) and ref in text for reference in references)


def _compact(text: str) -> str:
    return "".join(_WORD_CHARACTERS.findall(fold(text).lower()))


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens) between answer and reference.

    Computed by Google's rouge-score package with its default tokenizer and the Porter stemmer.

    Source: C.-Y. Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL 2004
    workshop, section 3.1.
    """
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


@functools.cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def embedding_similarity(prediction: str, reference: str, embed: EmbedFunction) -> float:
    """Cosine similarity of the two texts' embeddings, in [-1, 1].

    embed maps texts to one vector per row (any scale; rows are normalised here). This is the
    semantic half of RAGAS answer correctness ("answer similarity", arXiv:2309.15217).
    """
    vectors = np.asarray(embed([prediction, reference]), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    if not norms.all():
        return 0.0
    return float(vectors[0] @ vectors[1] / (norms[0] * norms[1]))
