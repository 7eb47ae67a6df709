"""Language-aware text analysis shared by indexing, answering and judging.

One place decides what a sentence, a word and a language are, for English and Chinese alike:
chunk boundaries, BM25 terms (through `retrieval.tokenize`), extractive answers, citation
checks, near-duplicate checks, the embedded judge and the faithfulness metrics all use it.

- `fold` makes text comparable across scripts and widths: Traditional Chinese becomes Simplified
  (OpenCC's character table "t2s", about 11 M characters/s here) and full-width letters, digits
  and punctuation become their ASCII forms (NFKC). It is for matching only; the text people
  read is never folded.
- `split_sentences` cuts at . ! ? (not after abbreviations, initials or decimals) and at the
  Chinese 。！？； and …, and joins lines wrapped inside a sentence.
- `word_count` counts Latin words and Chinese words (about two characters each), so a rule such
  as "a statement has four words or more" means the same in both languages.
- `language_of` tells a mostly-Chinese text ("zh") from any other ("en"), for replies and fusion.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata

import opencc

# Scripts written without spaces between words (Han, kana; Hangul, whose words are long
# agglutinated runs). The iteration mark 々 and 〇 are Han in use; the katakana middle dot is not.
CJK_RANGES = (
    "\u1100-\u11ff\u3005\u3007\u3041-\u309f\u30a0-\u30fa\u30fc-\u30ff\u3131-\u318e"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\uff66-\uff9f"
    "\uffa0-\uffdc\U00020000-\U0003134f"
)
_CJK_CHAR = re.compile(f"[{CJK_RANGES}]")
# Chinese characters and the punctuation written with them (CJK symbols, full-width forms).
_CHINESE_WRITING = re.compile(f"[{CJK_RANGES}\u3000-\u303f\uff00-\uffef]")
_LATIN_WORD = re.compile(rf"[^\W{CJK_RANGES}]+")
_LETTER = re.compile(r"[^\W\d_]")

# Separators for chunking, strongest first: paragraphs, lines, sentences (Latin and Chinese),
# clauses, words, then characters.
CHUNK_SEPARATORS = ["\n\n", "\n", ". ", "\u3002", "\uff01", "\uff1f", "! ", "? ", "\uff1b"]
CHUNK_SEPARATORS += ["; ", "\uff0c", ", ", " ", ""]

# A text is Chinese for replies and fusion when this share of its letters is CJK.
CHINESE_SHARE = 0.3
# Chinese words are one to four characters, two on average (so a 4-word rule is 8 characters).
CHARACTERS_PER_CHINESE_WORD = 2

_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "no", "fig", "figs",
    "eq", "sec", "art", "p", "pp", "vol", "inc", "ltd", "co", "corp", "jr", "sr", "u.s",
    "approx", "dept", "est", "cf", "al", "ch", "para",
}  # fmt: skip
_CLOSERS = "\"'\u201d\u2019)\\]\u300d\u300f\uff09\u3011"
# Latin end of sentence: a full stop, then space; whether it ends one depends on what follows.
_LATIN_END = re.compile(rf"[.!?][{_CLOSERS}]*\s+")
# Chinese end of sentence: 。！？； or an ellipsis (or ASCII !?; right after a Chinese character),
# with any closing quotes; it always ends the sentence, with or without a space after it.
_CHINESE_END = re.compile(
    rf"(?:[\u3002\uff01\uff1f\uff1b]|\u2026+|(?<=[{CJK_RANGES}])[!?;])[{_CLOSERS}]*\s*"
)
_NUMBER_LINE = re.compile(r"^\d{1,4}$")
_LIST_ITEM = re.compile(r"^(?:[-*\u2022!]|\d+[.)])\s|^\d+\u3001")
_ENDS_SENTENCE = re.compile(r"[.!?:;,\]\u3002\uff01\uff1f\uff1b\uff1a\uff0c\u2026]$|\w-$")
# A line this short without final punctuation is taken for a heading, not a wrapped sentence.
_HEADING_CHARS = 60
_CHINESE_HEADING_CHARS = 20
_FUNCTION_WORD_TEXT = "a an the of to and or but in on at for by with from as is are was were be"
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TEXT.split())


@functools.cache
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def has_cjk(text: str) -> bool:
    """Whether text holds any CJK character."""
    return _CJK_CHAR.search(text) is not None


def fold_width(text: str) -> str:
    """text with full-width letters, digits and punctuation as ASCII (NFKC), script kept."""
    return unicodedata.normalize("NFKC", text)


def fold(text: str) -> str:
    """text made comparable: full-width forms to ASCII (NFKC) and Traditional to Simplified
    Chinese. Lengths may change; use it for matching, never for display."""
    text = fold_width(text)
    return _converter().convert(text) if has_cjk(text) else text


def chinese_share(text: str) -> float:
    """Share of text's letters that are CJK characters, in [0, 1] (0 for no letters)."""
    letters = len(_LETTER.findall(text))
    return len(_CJK_CHAR.findall(text)) / letters if letters else 0.0


def language_of(text: str) -> str:
    """ "zh" for a text mostly written in Chinese (or Japanese/Korean script), else "en"."""
    return "zh" if chinese_share(text) >= CHINESE_SHARE else "en"


def reply_language(text: str) -> str:
    """The language to answer text in: "zh-hans" or "zh-hant" for a mostly Chinese text
    (Traditional when folding it to Simplified changes it), else "en"."""
    if language_of(text) != "zh":
        return "en"
    width_folded = fold_width(text)
    return "zh-hant" if _converter().convert(width_folded) != width_folded else "zh-hans"


def word_count(text: str) -> int:
    """Words in text: Latin words and numbers, plus Chinese characters counted two to a word."""
    cjk = len(_CJK_CHAR.findall(text))
    return len(_LATIN_WORD.findall(text)) + math.ceil(cjk / CHARACTERS_PER_CHINESE_WORD)


_WORD_PIECE = re.compile(rf"[{CJK_RANGES}]+|[^\W_{CJK_RANGES}]+(?:['\u2019.-][^\W_{CJK_RANGES}]+)*")


def words(text: str) -> list[str]:
    """The words of text for overlap checks, folded and lower-cased: Latin words (with inner
    apostrophes, dots and hyphens) and, for Chinese, overlapping character bigrams (a single
    character alone), as BM25 counts them. Unstemmed; `retrieval.tokenize` stems and drops stop
    words for search."""
    result: list[str] = []
    for piece in _WORD_PIECE.findall(fold(text).lower()):
        if _CJK_CHAR.match(piece):
            result.extend(
                [piece] if len(piece) == 1 else [piece[i : i + 2] for i in range(len(piece) - 1)]
            )
        else:
            result.append(piece)
    return result


def cjk_bigrams(run: str) -> list[str]:
    """The overlapping character bigrams of a CJK run, or the run itself if one character."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


@functools.cache
def _segmenter():
    import jieba  # loaded on first use: its dictionary takes a few seconds to read

    jieba.setLogLevel(60)
    jieba.initialize()
    return jieba


def word_bigrams(text: str) -> set[str]:
    """The CJK bigrams of text that lie inside one word, as jieba segments it (folded text).

    "年假需要提前多久申请" is 年/假/需要/提前/多久/申请: its bigrams 需要, 提前, 多久, 申请 are
    words and 年假 joins two single characters (a word the dictionary lacks), while 假需, 要提,
    前多 and 久申 straddle two words and are left out. For weighing a question's terms; search
    keeps every bigram, which needs no dictionary.
    """
    pieces = [piece for piece in _segmenter().lcut(fold(text)) if piece.strip()]
    bigrams: set[str] = set()
    for i, piece in enumerate(pieces):
        if _CJK_CHAR.match(piece) and len(piece) > 1:
            bigrams.update(cjk_bigrams(piece))
        following = pieces[i + 1] if i + 1 < len(pieces) else ""
        single_characters = len(piece) == 1 == len(following)
        if single_characters and _CJK_CHAR.match(piece) and _CJK_CHAR.match(following):
            bigrams.add(piece + following)
    return bigrams


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, at line breaks that end a block and after . ! ? (not after
    common abbreviations, initials or decimals) and 。！？；…. Lines wrapped inside a sentence
    are joined (without a space between Chinese characters). Citation markers such as [1] that
    follow a sentence's full stop stay with that sentence."""
    sentences: list[str] = []
    for block in _blocks(text):
        for piece in _split_chinese(block):
            sentences.extend(_split_latin(piece))
    return _attach_leading_markers(sentences)


def _blocks(text: str) -> list[str]:
    """Runs of lines that may hold one sentence across line breaks: a blank line, a list item, or
    a heading ends a run; lines holding only a number (footnote marks, page numbers in extracted
    PDF text) are dropped."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if not _NUMBER_LINE.match(line)]
    blocks: list[list[str]] = [[]]
    for i, line in enumerate(lines):
        if not line:
            blocks.append([])
            continue
        if _LIST_ITEM.match(line):
            blocks.append([])
        blocks[-1].append(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _is_heading(line, following):
            blocks.append([])
    return [_joined(block) for block in blocks if block]


def _joined(lines: list[str]) -> str:
    """Wrapped lines as one: a space between Latin words, none between Chinese characters or
    after or before Chinese punctuation (、，。「 ...)."""
    text = lines[0]
    for line in lines[1:]:
        glue = "" if _CHINESE_WRITING.match(text[-1:]) and _CHINESE_WRITING.match(line[:1]) else " "
        text += glue + line
    return text


def _is_heading(line: str, following: str) -> bool:
    """A short line without final punctuation, followed by a line that starts a new thought:
    "3.5 Metaclustering", "Savings clauses", "第三章 总则". (A wrapped line of a narrow column
    is followed by a lower-case word or ends in a function word such as "an".)"""
    if not following or _ENDS_SENTENCE.search(line):
        return False
    if has_cjk(line[:1]):
        return len(line) <= _CHINESE_HEADING_CHARS and 2 * len(line) <= len(following)
    if len(line) > _HEADING_CHARS or not (line[0].isupper() or line[0].isdigit()):
        return False
    if not (following[0].isupper() or following[0].isdigit() or has_cjk(following[:1])):
        return False
    return line.split()[-1].lower() not in _FUNCTION_WORDS


def _split_chinese(text: str) -> list[str]:
    if not has_cjk(text):
        return [text]
    pieces, start = [], 0
    for match in _CHINESE_END.finditer(text):
        if match.end() < len(text) and _only_markers_follow(text, match.end()):
            continue
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    if text[start:].strip():
        pieces.append(text[start:].strip())
    return [piece for piece in pieces if piece]


def _only_markers_follow(text: str, position: int) -> bool:
    """Whether only citation markers are left after position, e.g. '。[1]' at the very end."""
    return re.fullmatch(r"(?:\s*\[[\d,\s\u2013-]+\])+\s*", text[position:]) is not None


def _split_latin(line: str) -> list[str]:
    pieces, start = [], 0
    for match in _LATIN_END.finditer(line):
        end = match.end()
        following = line[end : end + 1]
        starts_sentence = following.isupper() or following.isdigit() or has_cjk(following)
        if not (starts_sentence or following in "\"'([\u201c"):
            continue
        before = line[start : match.start() + 1].split()
        word = before[-1].rstrip(".").lower() if before else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        pieces.append(line[start:end].strip())
        start = end
    if line[start:].strip():
        pieces.append(line[start:].strip())
    return pieces


_MARKER_RUN = re.compile(r"^(?:\s*\[\s*(?:sources?\s*)?\d[\d,;\s\u2013-]*\])+", re.IGNORECASE)


def _attach_leading_markers(sentences: list[str]) -> list[str]:
    result: list[str] = []
    for sentence in sentences:
        lead = _MARKER_RUN.match(sentence)
        if lead and result:
            glue = (
                ""
                if has_cjk(result[-1][-1:]) or result[-1][-1:] in "\u3002\uff01\uff1f\uff1b"
                else " "
            )
            result[-1] = f"{result[-1]}{glue}{lead.group(0).strip()}"
            sentence = sentence[lead.end() :].strip()
        if sentence:
            result.append(sentence)
    return result
