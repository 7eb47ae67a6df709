"""The extractive generator: an answer made of the retrieved passages' own sentences, each cited.

Used when no language model is configured (the default) and as the fallback when the model
server is unavailable, so it must state the fact, in English and in Chinese alike. It splits the
passages into sentences (`retrieval.text`), and scores each against the question:

- how much of the question it covers, each question term weighted by its idf in the knowledge
  base (BM25 terms: stemmed English words, Chinese character bigrams, Traditional folded to
  Simplified), so a question's rare words weigh most; its neighbours count for a little, since a
  sentence often leans on the one before it for its subject;
- how close its embedding is to the question's, where the embedder covers the question's
  language (all-MiniLM-L6-v2 is English-only; its cosine on Chinese text is noise);
- the rank of its passage;
- whether it has what the question asks for: a number for "how many", a date for "when", a
  duration for "how long" (and their Chinese forms).

The best sentences above a threshold form the answer, best first; when none clears it the
answer says, in the question's language, that it was not found in the documents. Sentences are
quoted as plain text: Markdown links keep their text, URLs and markup never reach an answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.text import has_cjk, language_of, split_sentences, word_bigrams, word_count
from retrieval.tokenize import Bm25Tokenizer
from retrieval.types import Passage

from .prompts import not_found_answer

EmbedFunction = Callable[[list[str]], np.ndarray]
TermsFunction = Callable[[str], list[str]]
IdfFunction = Callable[[Sequence[str]], Mapping[str, float]]

_FULL_STOP = re.compile(r"[.!?\u3002\uff01\uff1f\uff1b\u2026][\"'\u201d\u2019)\]\u300d\u300f]*$")
# A fragment this long without a full stop is a sentence cut at a chunk's end, still worth quoting.
_LONG_FRAGMENT_WORDS = 12
NOVEL_TERMS = 3  # terms beyond the question's for a sentence to count as fully informative
_TABLE_BARS = 3  # a sentence with this many | bars is a table row, not prose
# Question words carry no fact to find; removed before the question's terms are taken.
_QUESTION_WORDS = re.compile(
    r"为什么|為什麼|为何|為何|什么|什麼|怎么样|怎麼樣|怎么|怎麼|如何|哪里|哪裡|哪儿|哪兒|哪个|哪個"
    r"|哪些|哪一|哪|谁|誰|多少|几|幾|是否|吗|嗎|呢|请问|請問"
)
_ENGLISH_QUESTION_TEXT = """
about above after again all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of off on once only or other our out over own same she should so some such than that
the their them then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours please tell explain
describe give show find know say said
"""
ENGLISH_QUESTION_WORDS = frozenset(_ENGLISH_QUESTION_TEXT.split())
# Chinese function characters: a question bigram holding one ("鹏的", "业是") joins two words
# by grammar, not by meaning, and would reward sentences for sharing the grammar.
_FUNCTION_CHARACTERS = frozenset("的了是在和与及或被把这那吗呢吧啊哪么什谁几个")
# What a question asks for, and what a sentence that answers it contains.
_ASKS_NUMBER = re.compile(
    r"\bhow (?:many|much|often)\b|\bwhat (?:number|percentage|share|amount)\b|多少|几|幾|多大|多高"
    r"|多重|多远|多遠|比例|百分之",
    re.IGNORECASE,
)
_ASKS_TIME = re.compile(
    r"\bwhen\b|\bwhat (?:year|date|day|month|time)\b|\bwhich (?:year|date|day|month)\b"
    r"|\bhow long\b|什么时候|什麼時候|何时|何時|哪一?年|哪天|几时|幾時|多久"
    r"|多长时间|多長時間|几年|幾年",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d|[一二三四五六七八九十百千万萬亿億两兩]")
_TIME = re.compile(
    r"\b(?:1[5-9]|20)\d\d\b|\b\d+\s*(?:days?|weeks?|months?|years?|hours?|minutes?|seconds?)\b"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|[年月日天周週时時分秒]"
    r"|世纪|世紀|年代",
    re.IGNORECASE,
)
# Markup that must never be quoted: Markdown links and images, URLs, emphasis, inline code,
# HTML tags, template tags, attribute lists.
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"<?\bhttps?://\S+?>?(?=[\s)\]\u3002\uff0c,.;]*(?:\s|$))")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`+)(?=\S)(.+?)(?<=\S)\1")
_TAGS = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{:[^}]*\}|</?[a-zA-Z][^>]*>|<!--.*?-->")
_QUESTION_MARK = re.compile(r"[?\uff1f][\"'\u201d\u2019)\]\u300d]*$")
_HEADING_MARK = re.compile(r"^#{1,6}\s+")
_FIELD_LINE = re.compile(r"^[A-Za-z_][\w-]*:\s")  # "keywords: a, b": front matter, not prose


@dataclass(frozen=True)
class ScoredSentence:
    """A sentence of passage n (1-based) with its score and its parts: similarity (cosine),
    overlap (idf-weighted coverage of the question) and relevance (their weighted mean, what
    the threshold is compared with)."""

    text: str
    n: int
    score: float
    similarity: float
    overlap: float
    relevance: float = 0.0


@dataclass
class ExtractiveAnswer:
    """The composed answer; found is False when nothing cleared the threshold."""

    text: str
    found: bool
    sentences: list[ScoredSentence] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    text: str
    n: int
    terms: frozenset[str]
    context: frozenset[str]


class ExtractiveGenerator:
    """Compose a cited answer from the sentences of the passages that answer the question.

    Parameters:
        embed: maps a list of texts to an (n, d) array of L2-normalised vectors.
        terms: the BM25 analysis, text -> terms (default `retrieval.tokenize.Bm25Tokenizer()`).
        idf: the knowledge base's idf of the terms it has seen (term -> idf >= 0); None weighs
            every term alike.
        unseen_weight: a term the base has not seen weighs this many times the question's
            rarest seen term.
        embed_languages: languages ("en", "zh") whose cosine similarity is used; None for all.
        max_sentences: sentences in an answer (1 or more).
        threshold: minimum relevance in [0, 1] (coverage and similarity, weighted as in the
            score) for a sentence to be used; below it for every sentence, the answer is
            "not found".
        lexical_threshold: the same where the similarity is left out (the embedder does not
            cover the question's language), so relevance is the coverage alone.
        relative: a further sentence must score at least this share of the best one's.
        weights: the score's parts, (coverage, similarity, rank, answer type), each >= 0; the
            similarity part is left out (and the others rescaled) where the embedder does not
            cover the question's language.
        context_share: share of coverage that may come from the neighbouring sentences.
        embed_candidates: sentences embedded per question, the best by the other parts (the
            embedding is the costly step).

    >>> generator = ExtractiveGenerator(embedder.embed, Bm25Tokenizer())  # doctest: +SKIP
    >>> generator.answer("How long is the warranty?", passages).text  # doctest: +SKIP
    'The warranty lasts two years from delivery [1].'
    """

    def __init__(
        self,
        embed: EmbedFunction,
        terms: TermsFunction | None = None,
        idf: IdfFunction | None = None,
        *,
        embed_languages: frozenset[str] | None = frozenset({"en"}),
        max_sentences: int = 3,
        threshold: float = 0.35,
        lexical_threshold: float = 0.4,
        relative: float = 0.7,
        weights: tuple[float, float, float, float] = (0.4, 0.45, 0.05, 0.1),
        context_share: float = 0.25,
        unseen_weight: float = 1.5,
        embed_candidates: int = 16,
        min_words: int = 4,
        max_chars: int = 500,
    ) -> None:
        self.embed = embed
        self.terms = terms or Bm25Tokenizer()
        self.idf = idf
        self.embed_languages = embed_languages
        self.max_sentences = max(1, max_sentences)
        self.threshold = threshold
        self.lexical_threshold = lexical_threshold
        self.relative = relative
        self.weights = weights
        self.context_share = context_share
        self.unseen_weight = unseen_weight
        self.embed_candidates = embed_candidates
        self.min_words = min_words
        self.max_chars = max_chars
        # Question and function words, as the analysis spells them: taken once, not per question.
        self._stop_terms = frozenset(self.terms(" ".join(ENGLISH_QUESTION_WORDS)))

    def answer(self, question: str, passages: Sequence[Passage]) -> ExtractiveAnswer:
        """The answer to question from passages numbered [1]..[n] in the order given."""
        chosen = self.select(question, passages)
        if not chosen:
            return ExtractiveAnswer(not_found_answer(question), found=False)
        text = " ".join(cited(s.text, s.n) for s in chosen)
        if has_cjk(text):
            text = re.sub(r"(?<=[\u3002\uff01\uff1f]) (?=\S)", "", text)
        return ExtractiveAnswer(text, found=True, sentences=chosen)

    def select(self, question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
        """The sentences that answer best, best first, at most max_sentences."""
        candidates = self._candidates(passages)
        asked = self._question_terms(question)
        if not candidates or not asked:
            return []
        weights = self._term_weights(asked)
        total = sum(weights.values())
        coverage = [self._coverage(c, weights, total) for c in candidates]
        kind = _answer_kind(question)
        fits = [_fits(kind, c.text) for c in candidates]
        ranks = [1.0 / (1.0 + 0.25 * (c.n - 1)) for c in candidates]
        w_cover, w_sim, w_rank, w_kind = self.weights
        if not self._embeds(question):
            w_sim = 0.0
        scale = w_cover + w_sim + w_rank + w_kind
        partial = [
            (w_cover * cover + w_rank * rank + w_kind * fit) / scale
            for cover, rank, fit in zip(coverage, ranks, fits, strict=True)
        ]
        similarity = self._similarities(question, candidates, partial, w_sim > 0)
        news = [_novelty(c.terms, asked) for c in candidates]
        scored = [
            ScoredSentence(
                c.text,
                c.n,
                (base + w_sim * sim / scale) * new,
                sim,
                cover,
                (w_cover * cover + w_sim * sim) / (w_cover + w_sim),
            )
            for c, base, sim, cover, new in zip(
                candidates, partial, similarity, coverage, news, strict=True
            )
        ]
        threshold = self.threshold if w_sim > 0 else self.lexical_threshold
        content = {c.text: c.terms - self._stop_terms for c in candidates}
        return self._chosen(scored, threshold, content)

    def _chosen(
        self, scored: list[ScoredSentence], threshold: float, content: dict[str, frozenset[str]]
    ) -> list[ScoredSentence]:
        """The best sentences by score whose relevance clears the threshold (rank and answer
        type choose between relevant sentences; they never make an irrelevant one relevant)."""
        scored.sort(key=lambda s: s.score, reverse=True)
        floor = scored[0].score * self.relative
        chosen: list[ScoredSentence] = []
        for sentence in scored:
            if sentence.score < floor or len(chosen) == self.max_sentences:
                break
            if sentence.relevance < threshold:
                continue
            if not any(near_duplicate(content[sentence.text], content[c.text]) for c in chosen):
                chosen.append(sentence)
        return chosen

    def _question_terms(self, question: str) -> frozenset[str]:
        stripped = _QUESTION_WORDS.sub(" ", question)
        terms = [t for t in self.terms(stripped) if t not in self._stop_terms]
        if has_cjk(stripped):
            inside = word_bigrams(stripped)
            terms = [t for t in terms if not has_cjk(t) or len(t) == 1 or t in inside] or terms
        content = [t for t in terms if not (has_cjk(t) and _FUNCTION_CHARACTERS & set(t))]
        return frozenset(content or terms)

    def _term_weights(self, asked: frozenset[str]) -> dict[str, float]:
        if self.idf is None:
            return dict.fromkeys(asked, 1.0)
        known = {t: max(0.0, float(v)) for t, v in self.idf(sorted(asked)).items()}
        # A term the base never saw names what it cannot answer: it weighs unseen_weight times
        # the question's rarest seen term (relative, because in a base of a few documents every
        # seen word looks common, and one word the stemmer does not join to its form in the
        # text, "fly" and "flights", must not outweigh the rest of the question).
        unseen = self.unseen_weight * max(known.values(), default=0.0) or 1.0
        return {t: known.get(t, unseen) for t in asked}

    def _coverage(self, candidate: _Candidate, weights: dict[str, float], total: float) -> float:
        if total <= 0:
            return 0.0
        own = sum(w for t, w in weights.items() if t in candidate.terms) / total
        around = sum(w for t, w in weights.items() if t in candidate.context) / total
        return (1 - self.context_share) * own + self.context_share * around

    def _embeds(self, question: str) -> bool:
        return self.embed_languages is None or language_of(question) in self.embed_languages

    def _similarities(
        self, question: str, candidates: list[_Candidate], partial: list[float], use: bool
    ) -> list[float]:
        """Cosine of the question and each of the embed_candidates best candidates (0 for the
        others, and for all when use is False)."""
        similarity = [0.0] * len(candidates)
        if not use:
            return similarity
        best = sorted(range(len(candidates)), key=lambda i: -partial[i])[: self.embed_candidates]
        vectors = np.asarray(self.embed([question] + [candidates[i].text for i in best]))
        for i, value in zip(best, (vectors[1:] @ vectors[0]).tolist(), strict=True):
            similarity[i] = max(0.0, value)
        return similarity

    def _candidates(self, passages: Sequence[Passage]) -> list[_Candidate]:
        seen: set[str] = set()
        candidates = []
        for n, passage in enumerate(passages, start=1):
            sentences = [plain_text(s) for s in split_sentences(_without_table_rows(passage.text))]
            term_sets = [frozenset(self.terms(s)) for s in sentences]
            for i, sentence in enumerate(sentences):
                key = sentence.lower()
                if key in seen or not self._is_statement(sentence):
                    continue
                seen.add(key)
                context = frozenset().union(*term_sets[max(0, i - 1) : i + 2])
                text = _clip(sentence, self.max_chars)
                candidates.append(_Candidate(text, n, term_sets[i], context))
        return candidates

    def _is_statement(self, sentence: str) -> bool:
        """A full sentence, not a heading, a caption stub, a lead-in ending in a colon, a
        front-matter field or the rows of a table (quoted whole they read as noise)."""
        words = word_count(sentence)
        if words < self.min_words or sentence.count("|") >= _TABLE_BARS:
            return False
        if _FIELD_LINE.match(sentence) and words < _LONG_FRAGMENT_WORDS:
            return False
        if _QUESTION_MARK.search(sentence):
            return False  # a question (an FAQ heading, a quoted prompt) states no fact
        return bool(_FULL_STOP.search(sentence)) or words >= _LONG_FRAGMENT_WORDS


def plain_text(sentence: str) -> str:
    """A sentence as a reader should see it quoted: link text without its address, no image,
    URL, emphasis mark, inline code mark, HTML or template tag, heading mark or bullet."""
    text = _IMAGE.sub("", sentence)
    text = _LINK.sub(r"\1", text)
    text = _TAGS.sub("", text)
    text = _URL.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _HEADING_MARK.sub("", text.strip())
    text = re.sub(r"\s{2,}", " ", text)
    return text.strip(" -*!>\u2022\t")


def _novelty(terms: frozenset[str], asked: frozenset[str]) -> float:
    """A factor in [0.6, 1] for how much a sentence says beyond the question's own words: a
    sentence that only repeats the question ("What is Tock?" as a heading) states nothing."""
    return 0.6 + 0.4 * min(1.0, len(terms - asked) / NOVEL_TERMS)


def _answer_kind(question: str) -> str | None:
    if _ASKS_TIME.search(question):
        return "time"
    if _ASKS_NUMBER.search(question):
        return "number"
    return None


def _fits(kind: str | None, sentence: str) -> float:
    """1 when the sentence has what the question asks for (or it asks for nothing in
    particular), 0 when it lacks it."""
    if kind == "time":
        return 1.0 if _TIME.search(sentence) else 0.0
    if kind == "number":
        return 1.0 if _NUMBER.search(sentence) else 0.0
    return 1.0


def _without_table_rows(text: str) -> str:
    """text less its Markdown table rows (lines of | cells), which split_sentences would
    otherwise join to the prose around them."""
    return "\n".join(line for line in text.split("\n") if line.count("|") < _TABLE_BARS)


def near_duplicate(terms_a: frozenset[str], terms_b: frozenset[str]) -> bool:
    """Whether two sentences, given as their content terms, share more than 80% of the shorter
    one's terms."""
    if not terms_a or not terms_b:
        return False
    return len(terms_a & terms_b) / min(len(terms_a), len(terms_b)) > 0.8


def _clip(sentence: str, limit: int) -> str:
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit - 1]
    if not has_cjk(cut[-20:]):
        cut = cut.rsplit(" ", 1)[0]
    return cut + "\u2026"


def cited(text: str, n: int) -> str:
    """The sentence with its marker before the full stop: 'It lasts two years [1].',
    '年假为十五天[1]。'."""
    text = text.strip()
    if has_cjk(text[-2:]) or text.endswith(("\u3002", "\uff1b", "\uff0c", "\uff1a")):
        end = text[-1] if text.endswith(("\uff01", "\uff1f")) else "\u3002"
        return f"{text.rstrip('。；，：.;:,！？!?').rstrip()}[{n}]{end}"
    text = text.rstrip(".;:,").rstrip()
    return f"{text} [{n}]."
