"""Judges that decide whether passages support a statement, behind the `Judge` protocol of
`generation.faithfulness`: an LLM judge (claim extraction and verification prompts sent to an
OpenAI-compatible server) and an embedded judge that needs no LLM (the embedding model plus
lexical evidence).
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import Stemmer

from retrieval.text import split_sentences, words

from .errors import GenerationError
from .faithfulness import EmbedFunction, Verdict, is_abstention, split_claims

# Words that carry no checkable fact: function words, and the words answers use to talk about
# their sources ("the passage mentions", "based on the information provided").
_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing done down during each either few for from
further had has have having he her here hers him his how however i if in into is it its itself
just may me might more most must my no nor not now of off on once only or other our ours out
over own per same she should so some such than that the their theirs them then there these they
this those through to too under until up upon very was we were what when where whether which
while who whom whose why will with within without would yes yet you your additionally according
answer answers based context document documents following further given info information mention
mentioned mentions note overall passage passages provide provided provides question snippet
source sources specific specifically state stated states text
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_NUMBER = re.compile(r"\d")
# Statements that report what the sources lack make no claim about the world.


class EmbeddedJudge:
    """A judge without an LLM: a statement is supported when the context contains its content
    words and says something close to it.

    For each statement it finds the content words (stemmed; function words and words about the
    sources left out) that appear neither in the context nor in the question, keeps as unsupported
    only those whose embedding is not close to a context word's (so "purchase" matches "buy"),
    and measures the highest cosine similarity between the statement and a context sentence.
    Its support score is exp(-(novel_word_weight * unsupported words + similarity_weight *
    length * max(0, similarity_floor - similarity))), in (0, 1], where length = min(1, content
    words / short_claim_words): the cosine of a two-word claim ("Serj Tankian") with a sentence
    says little, so it counts less. The answer's support, the product over its claims, then
    ranks answers by their total unsupported content. Supported means score >=
    threshold: with the defaults, a claim with four or more content words absent from the
    context (three, if it is also unlike every context sentence and has eight or more content
    words) is unsupported.

    embed: maps texts to one vector per row (L2-normalised or not), e.g. all-MiniLM-L6-v2.
    The defaults were chosen on the even-numbered sources of the RAGTruth QA dev file, and
    short_claim_words on the even-numbered HaluEval QA items (see bench/judge.py).

    >>> judge = EmbeddedJudge(embedder.embed)  # doctest: +SKIP
    >>> judge.verify(["Paris is in France."], ["Paris is the capital of France."])  # doctest: +SKIP
    """

    name = "embedded"

    def __init__(
        self,
        embed: EmbedFunction,
        *,
        threshold: float = 0.2,
        novel_word_weight: float = 0.5,
        similarity_weight: float = 2.0,
        similarity_floor: float = 0.5,
        word_match: float = 0.8,
        short_claim_words: int = 8,
        language: str = "english",
    ) -> None:
        self._embed = embed
        self.threshold = threshold
        self.novel_word_weight = novel_word_weight
        self.similarity_weight = similarity_weight
        self.similarity_floor = similarity_floor
        self.word_match = word_match
        self.short_claim_words = max(1, short_claim_words)
        self._stemmer = Stemmer.Stemmer(language)

    def extract_claims(self, answer: str, question: str = "") -> list[str]:
        """The answer's sentences (see split_claims), less those that only say what the sources
        do not contain."""
        return [claim for claim in split_claims(answer) if not is_abstention(claim)]

    def verify(
        self, statements: Sequence[str], passages: Sequence[str], question: str = ""
    ) -> list[Verdict]:
        """One verdict per statement against all passages together."""
        if not statements:
            return []
        context_sentences = [s for p in passages for s in split_sentences(p)] or [""]
        known = self._stems(" ".join(passages) + " " + question)
        vectors = _normalised(self._embed(list(statements) + context_sentences))
        similarity = vectors[: len(statements)] @ vectors[len(statements) :].T
        novel = self._unsupported_words(statements, known, passages)
        return [
            self._verdict(statement, words, similarity[row], context_sentences)
            for row, (statement, words) in enumerate(zip(statements, novel, strict=True))
        ]

    def _verdict(
        self, statement: str, words: list[str], similarity: np.ndarray, sentences: list[str]
    ) -> Verdict:
        best = int(np.argmax(similarity))
        closest = float(similarity[best])
        length = min(1.0, len(self._content_words(statement)) / self.short_claim_words)
        penalty = self.novel_word_weight * len(words) + self.similarity_weight * length * max(
            0.0, self.similarity_floor - closest
        )
        score = math.exp(-penalty)
        reason = f"closest context sentence (cosine {closest:.2f}): {_quote(sentences[best])}"
        if words:
            reason = f"not in the context: {', '.join(words[:8])}; " + reason
        return Verdict(statement, score >= self.threshold, score, reason)

    def _unsupported_words(
        self, statements: Sequence[str], known: set[str], passages: Sequence[str]
    ) -> list[list[str]]:
        """Per statement, its content words absent from the context, less near-synonyms."""
        candidates = [
            list(dict.fromkeys(w for w in self._content_words(s) if self._stem(w) not in known))
            for s in statements
        ]
        unknown = sorted({w for words in candidates for w in words if not _NUMBER.search(w)})
        context_words = sorted(
            {w for p in passages for w in self._content_words(p) if not _NUMBER.search(w)}
        )
        if not unknown or not context_words or self.word_match >= 1:
            return candidates
        vectors = _normalised(self._embed(unknown + context_words))
        best = (vectors[: len(unknown)] @ vectors[len(unknown) :].T).max(axis=1)
        matched = {w for w, score in zip(unknown, best, strict=True) if score >= self.word_match}
        return [[w for w in words if w not in matched] for words in candidates]

    def _content_words(self, text: str) -> list[str]:
        return [w for w in words(text) if w not in _STOPWORDS]

    def _stems(self, text: str) -> set[str]:
        return {self._stem(w) for w in words(text)}

    def _stem(self, word: str) -> str:
        return self._stemmer.stemWord(word.replace("\u2019", "'"))


def cached_embed(embed: EmbedFunction, max_texts: int = 50_000) -> EmbedFunction:
    """embed with a memory of the last max_texts texts it embedded. A judge embeds the same
    context sentences again and again: for an answer's faithfulness, then for each cited
    sentence and each citation, and across questions that retrieve the same passages."""
    seen: OrderedDict[str, np.ndarray] = OrderedDict()

    def cached(texts: Sequence[str]) -> np.ndarray:
        new = [text for text in dict.fromkeys(texts) if text not in seen]
        if new:
            seen.update(zip(new, np.asarray(embed(new)), strict=True))
        rows = []
        for text in texts:
            seen.move_to_end(text)
            rows.append(seen[text])
        while len(seen) > max_texts:
            seen.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, 1), np.float32)

    return cached


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return '"' + (text if len(text) <= limit else text[: limit - 1] + "\u2026") + '"'


# --- LLM judge ----------------------------------------------------------------------------------


class ChatClient(Protocol):
    """What the LLM judge needs of a client: generation.client.VllmClient has it."""

    def chat(
        self, messages: list[dict[str, str]], model: str | None = None, **options: Any
    ) -> str: ...


CLAIMS_PROMPT = """Break the answer below into short, self-contained factual claims. Resolve
pronouns so that each claim can be checked on its own. Leave out statements that only say what
the sources do not contain. Reply with JSON only: {{"claims": ["...", "..."]}}

Question: {question}

Answer: {answer}"""

VERIFY_PROMPT = """Decide for each statement whether the context supports it: "yes" only if the
context states it or it follows directly from the context, "no" otherwise (contradicted or not
mentioned). Reply with JSON only: {{"verdicts": [{{"statement": 1, "verdict": "yes" or "no",
"reason": "one short sentence"}}, ...]}} with one entry per statement, in order.

Context:
{context}

Statements:
{statements}"""


class LlmJudge:
    """A judge that asks a language model: one prompt extracts the claims, one verifies them.

    Robust to malformed replies: JSON is looked for inside code fences and surrounding prose, a
    truncated list keeps its complete entries, and claims the reply leaves out (or a reply that
    is not JSON at all) fall back to rule-based splitting or to "no" with the reason saying that
    the judge's reply could not be read. Raises GenerationError subclasses when the server fails.

    client: anything with chat(messages, **options) -> str, e.g. generation.client.VllmClient.
    model: the judge model name (None: the client's default).
    """

    name = "llm"

    def __init__(self, client: ChatClient, model: str | None = None, max_tokens: int = 768) -> None:
        self._client = client
        self.model = model
        self.max_tokens = max_tokens

    def extract_claims(self, answer: str, question: str = "") -> list[str]:
        """The claims the model lists, or the rule-based split when its reply is unreadable."""
        if not answer.strip():
            return []
        reply = self._ask(CLAIMS_PROMPT.format(question=question or "-", answer=answer))
        data = parse_json_reply(reply)
        claims = data.get("claims") if isinstance(data, dict) else data
        if not isinstance(claims, list):
            return split_claims(answer)
        return [str(c).strip() for c in claims if isinstance(c, str | int | float) and str(c)]

    def verify(
        self, statements: Sequence[str], passages: Sequence[str], question: str = ""
    ) -> list[Verdict]:
        """One verdict per statement; a statement the reply does not cover counts as unsupported."""
        if not statements:
            return []
        numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(statements, start=1))
        context = "\n\n".join(f"[{i}] {p}" for i, p in enumerate(passages, start=1))
        reply = self._ask(VERIFY_PROMPT.format(context=context, statements=numbered))
        found = _verdicts_by_number(parse_json_reply(reply), len(statements))
        missing = (False, "the judge's reply did not give a verdict on this statement")
        verdicts = []
        for number, statement in enumerate(statements, start=1):
            supported, reason = found.get(number, missing)
            verdicts.append(Verdict(statement, supported, float(supported), reason))
        return verdicts

    def _ask(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        return self._client.chat(
            messages, model=self.model, temperature=0.0, max_tokens=self.max_tokens
        )


def _verdicts_by_number(data: Any, count: int) -> dict[int, tuple[bool, str]]:
    """(supported, reason) by statement number, from the entries of a reply that can be read."""
    items = data.get("verdicts") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return {}
    found: dict[int, tuple[bool, str]] = {}
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            continue
        number = _as_int(item.get("statement"), position)
        supported = _as_yes(item.get("verdict", item.get("supported")))
        if supported is None or not 1 <= number <= count or number in found:
            continue
        found[number] = (supported, str(item.get("reason", "")).strip())
    return found


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_yes(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"yes", "true", "supported", "1", "y"}:
        return True
    if text in {"no", "false", "unsupported", "not supported", "0", "n"}:
        return False
    return None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_json_reply(reply: str) -> Any:
    """The JSON value in a model's reply, or None: tries the whole reply, then code fences, then
    the outermost {...} or [...] span, then that span repaired (trailing commas removed, a
    truncated list or object closed after its last complete entry)."""
    candidates = [reply.strip()] + [m.strip() for m in _FENCE.findall(reply)]
    for opening, closing in ("{}", "[]"):
        start = reply.find(opening)
        if start >= 0:
            end = reply.rfind(closing)
            candidates.append(reply[start : end + 1] if end > start else reply[start:])
    for candidate in candidates:
        for text in (candidate, _repaired(candidate)):
            try:
                return json.loads(text)
            except (json.JSONDecodeError, ValueError):
                continue
    return None


def _repaired(text: str) -> str:
    """Close a JSON text cut off mid-way after its last complete element."""
    text = re.sub(r",\s*([}\]])", r"\1", text)
    cut = max(text.rfind("},"), text.rfind('",'), text.rfind("}"))
    if cut > 0:
        text = text[: cut + 1].rstrip(",")
    stack = []
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    return text + "".join(reversed(stack))


def make_judge(
    kind: str, *, embed: EmbedFunction | None = None, client: ChatClient | None = None
) -> EmbeddedJudge | LlmJudge:
    """The judge named by kind: "llm" (needs client), "embedded" (needs embed), or "auto" (llm
    when a client is given, else embedded). Raises GenerationError when the one named cannot be
    built."""
    if kind == "auto":
        kind = "llm" if client is not None else "embedded"
    if kind == "llm":
        if client is None:
            raise GenerationError("The LLM judge needs a language model server (RAG_LLM_BASE_URL).")
        return LlmJudge(client)
    if kind == "embedded":
        if embed is None:
            raise GenerationError("The embedded judge needs an embedding model.")
        return EmbeddedJudge(cached_embed(embed))
    raise GenerationError(f"Unknown judge {kind!r}: use auto, llm or embedded.")


JudgeFactory = Callable[..., EmbeddedJudge | LlmJudge]
