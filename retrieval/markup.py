"""Markup a reader never sees, taken out of Markdown and HTML before they become sections.

Static-site sources (Jekyll, Eleventy, MkDocs, Docusaurus, GitHub pages) wrap their prose in
front matter, template tags, attribute lists and admonition syntax. split_front_matter() turns
YAML (---) or TOML (+++) front matter into a title and metadata; clean_markdown() removes the
rest and keeps headings and code fences for the section builder; table_rows() writes each row
of an HTML table as one line whose cells are labelled with their column's header, so a row is
found by what its columns mean ("Severity: SEV-1; Description: Critical issue ...").
"""

from __future__ import annotations

import html
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml
from bs4 import BeautifulSoup, Tag

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when it is there
_METADATA_CHARS = 10_000  # the most text one front-matter field keeps

_FRONT_MATTER_LINE = re.compile(r"^\s*(?:[\w.-]+\s*[:=]|- |#|$)|^\s+\S")
_LOOSE_FIELD = re.compile(r"^([\w.-]+)\s*[:=]\s*(.*)$")

# A tag's text never holds the opening of another tag: an unclosed one is left alone, and the
# search stays linear however many unclosed openings a file has.
_LIQUID_COMMENT = re.compile(
    r"\{%-?\s*comment\s*-?%\}(?:(?!\{%-?\s*comment\b).)*?\{%-?\s*endcomment\s*-?%\}", re.S
)
_LIQUID_TAG = re.compile(r"\{%-?\s*(\w*)((?:(?!\{%).)*?)-?%\}", re.S)
_LIQUID = re.compile(
    r"\{%(?:(?!\{%).)*?%\}|\{\{(?:(?!\{\{).)*?\}\}|\{#[-\s](?:(?!\{#).)*?[-\s]#\}", re.S
)
_QUOTED = re.compile(r"\"([^\"]*)\"|'([^']*)'")
_EMPTY_CODE_SPAN = re.compile(r"`[ \t]*`")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_STASHED = re.compile("\ue000(\\d+)\ue001")

_HTML_COMMENT = re.compile(r"<!--(?:(?!<!--).)*?-->", re.S)
_TABLE_TAG = re.compile(r"<(/?)table\b[^>]*>", re.I)
_HIDDEN_ELEMENT = re.compile(
    r"<(script|style|iframe|video|audio|object|svg|template|noscript)\b(?:(?!<\1\b).)*?</\1\s*>",
    re.I | re.S,
)
_HTML_HEADING_LINE = re.compile(r"^[ \t]*<h([1-6])\b[^>]*>(.*?)</h\1\s*>[ \t]*$", re.I | re.M)
_HTML_BREAK = re.compile(r"</?br\s*/?>", re.I)
_HTML_BLOCK_TAG = re.compile(
    r"</?(?:address|article|aside|blockquote|caption|center|dd|details|div|dl|dt|fieldset|"
    r"figcaption|figure|footer|form|h[1-6]|header|hr|li|main|nav|ol|p|pre|section|summary|"
    r"t(?:able|body|d|foot|h|head|r)|ul)\b[^<>]*>",
    re.I,
)
_HTML_INLINE_TAG = re.compile(
    r"</?(?:a|abbr|b|bdi|bdo|big|button|cite|code|col|colgroup|del|dfn|em|embed|font|i|img|"
    r"iframe|input|ins|kbd|label|mark|object|param|picture|q|s|samp|small|source|span|strike|"
    r"strong|sub|sup|time|track|tt|u|var|video|wbr)\b[^<>]*>",
    re.I,
)

_ATTRIBUTE_LIST = re.compile(r"(?<![ \t])[ \t]*\{(?::[^{}\n]*|#[^{}\s]*)\}")
_ADMONITION = re.compile(
    r"^(?:!!!|\?\?\?\+?)[ \t]*(?:[\w-]+(?:[ \t]+[\w-]+)*)?[ \t]*(?:\"(.*)\"|'(.*)')?[ \t]*$"
)
_DIRECTIVE_FENCE = re.compile(
    r"^[ \t]*:{3,}[ \t]*(?:[\w-]+)?[ \t]*(?:\[(.*)\]|([^{\s].*?))?[ \t]*$"
)
_QUOTE_MARKERS = re.compile(r"^(?: {0,3}>[ \t]?)+")
_ALERT_MARKER = re.compile(r"^\[!(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION)\][ \t]*", re.I)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[(?!\^)[^\]]+\]:[ \t]*\S+.*$")
_FOOTNOTE_DEFINITION = re.compile(r"^( {0,3})\[\^[^\]\s]+\]:[ \t]*")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BARE_MARKER = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)]|[*_~]{2,6})[ \t]*$")
_TABLE_DELIMITER = re.compile(r"^[ \t]*\|?(?:[ \t]*:?-+:?[ \t]*\|)*[ \t]*:?-+:?[ \t]*\|?[ \t]*$")
_CELL_BAR = re.compile(r"(?<!\\)\|")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" (?=[.,;:)\]]|[!?](?:\s|$))")
_SPACE_AFTER_BRACKET = re.compile(r"([(\[]) ")

_BRACKETS = r"\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]"
_IMAGE = re.compile(r"!" + _BRACKETS + r"(?:\((?:[^()\n]|\([^()\n]*\))*\)|\[[^\]\n]*\])")
_LINK = re.compile(
    _BRACKETS + r"(?:\(<[^<>\n]*>[^()\n]*\)|\((?:[^()\n]|\([^()\n]*\))*\)|\[[^\]\n]*\])"
)
_FOOTNOTE_REFERENCE = re.compile(r"\[\^[^\]\s]+\]")
_AUTOLINK = re.compile(r"<(?:mailto:)?([^<>\s@]+@[^<>\s]+|https?://[^<>\s]+)>", re.I)
_BARE_URL = re.compile(r"\bhttps?://[^\s<>\"'`\ue000\ue001]+", re.I)
_EMPTY_PARENTHESES = re.compile(r"(?<!\w)\([ \t]*\)")
_PARAGRAPH_CHAR = r"(?:[^\n]|\n(?![ \t]*\n))"  # any character but a blank line's break
_STRONG = re.compile(
    rf"\*\*(?=\S)((?:(?!\*\*){_PARAGRAPH_CHAR})+?)\*\*"
    rf"|(?<!\w)__(?=\S)((?:(?!__){_PARAGRAPH_CHAR})+?)(?<=\S)__(?!\w)"
)
_EMPHASIS = re.compile(
    rf"(?<![*\\])\*(?![\s*])((?:(?!\*){_PARAGRAPH_CHAR})+?)(?<![\s\\])\*(?!\*)"
    rf"|(?<![\w\\])_(?![\s_])((?:(?!_){_PARAGRAPH_CHAR})+?)(?<![\s\\])_(?!\w)"
)
_STRAY_STRONG = re.compile(r"(?:(?<=\s)|^)\*{2,3}(?!\*)|(?<!\*)\*{2,3}(?=\s|$)", re.M)
_STRIKETHROUGH = re.compile(r"~~(?=\S)((?:(?!~~).)+?)(?<=\S)~~")
_ESCAPE = re.compile(r"\\([!\"$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")


@dataclass(frozen=True)
class FrontMatter:
    """What a document's front matter says: its title, its other fields as text, and a warning
    when the block could not be read as YAML or TOML and was read line by line instead."""

    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    warning: str | None = None


def split_front_matter(text: str) -> tuple[FrontMatter | None, str]:
    """Return the front matter at the start of a Markdown text (None if it has none) and the
    text after it. A block that holds prose rather than fields is not front matter."""
    lines = text.split("\n")
    opener = lines[0].lstrip("\ufeff").rstrip()
    if opener not in ("---", "+++"):
        return None, text
    closers = ("---", "...") if opener == "---" else ("+++",)
    end = next((n for n, line in enumerate(lines[1:], 1) if line.rstrip() in closers), None)
    if end is None:
        return None, text
    block = "\n".join(lines[1:end])
    front_matter = _read_fields(block, toml=opener == "+++")
    if front_matter is None:
        return None, text
    return front_matter, "\n".join(lines[end + 1 :])


def _read_fields(block: str, toml: bool) -> FrontMatter | None:
    """Parse the block as YAML or TOML; fall back to `key: value` lines when it is broken."""
    try:
        fields = tomllib.loads(block) if toml else yaml.load(block, Loader=_YAML_LOADER)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines or not all(_FRONT_MATTER_LINE.match(line) for line in lines):
            return None
        kind = "TOML" if toml else "YAML"
        where = getattr(getattr(error, "problem_mark", None), "line", None)
        place = f" (line {where + 2})" if where is not None else ""
        loose = (_LOOSE_FIELD.match(line) for line in lines)
        fields = {match[1]: match[2].strip().strip("\"'") for match in loose if match}
        warning = f"The front matter is not valid {kind}{place}; its fields were read line by line."
        return _front_matter(fields, warning)
    if fields is None:
        return FrontMatter()
    return _front_matter(fields, None) if isinstance(fields, dict) else None


def _front_matter(fields: dict, warning: str | None) -> FrontMatter:
    metadata = {str(key): _as_text(value) for key, value in fields.items()}
    title = next((metadata.pop(key) for key in list(metadata) if key.lower() == "title"), "")
    title = " ".join(_clean_inline(_without_liquid(title)).split())
    return FrontMatter(title or None, {k: v for k, v in metadata.items() if v}, warning)


def _as_text(value: object, depth: int = 0) -> str:
    """Write a front-matter value as text: lists joined by commas, mappings as `key: value`.
    Nesting and length are bounded: YAML aliases can make a small block a huge tree."""
    if value is None or depth > 4:
        return ""
    if isinstance(value, list | tuple | set | dict):
        items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        parts: list[str] = []
        size = 0
        for key, item in items:
            text = _as_text(item, depth + 1)
            parts.append(text if key is None else f"{key}: {text}")
            size += len(parts[-1])
            if size > _METADATA_CHARS:
                break
        text = ("; " if isinstance(value, dict) else ", ").join(filter(None, parts))
    else:
        text = str(value).strip()
    return text[:_METADATA_CHARS]


def fence_after(fence: str | None, mark: str | None) -> str | None:
    """Return the code fence still open after a line that carries this fence mark (or none)."""
    if fence and mark and mark[0] == fence[0] and len(mark) >= len(fence):
        return None
    return fence or mark


def clean_markdown(text: str, site_source: bool = False) -> str:
    """Remove template tags, HTML, attribute lists, admonition syntax, images and link targets
    from Markdown; turn tables into labelled rows. Headings and fenced code stay (code is kept
    verbatim, except that a static-site source, one with front matter or template tags in its
    prose, also loses the template tags in its code)."""
    blocks = list(_blocks(text))
    site_source = site_source or any(not code and _LIQUID.search(part) for code, part in blocks)
    cleaned = [
        (_without_liquid(part) if site_source else part) if code else _clean_prose(part)
        for code, part in blocks
    ]
    return "\n".join(cleaned)


def _blocks(text: str) -> Iterator[tuple[bool, str]]:
    """Split Markdown into runs of prose and of fenced code, fence lines included."""
    fence: str | None = None
    run: list[str] = []
    in_code = False
    for line in text.split("\n"):
        mark = (FENCE.match(line) or [None, None])[1]
        code = bool(fence or mark)
        if code != in_code and run:
            yield in_code, "\n".join(run)
            run = []
        in_code = code
        run.append(line)
        if code:
            fence = fence_after(fence, mark)
    if run:
        yield in_code, "\n".join(run)


def _clean_prose(text: str) -> str:
    """Clean a run of Markdown prose; inline code is set aside first and comes back verbatim."""
    text = _EMPTY_CODE_SPAN.sub("", _without_liquid(text))
    spans: list[str] = []

    def stash(match: re.Match[str]) -> str:
        content = match[2]
        spans.append(content[1:-1] if content[:1] == content[-1:] == " " else content)
        return f"\ue000{len(spans) - 1}\ue001"

    text = _CODE_SPAN.sub(stash, _HTML_COMMENT.sub("", text))
    text = _without_html("\n".join(_pipe_tables(text.split("\n"))))
    text = "\n".join(_without_block_markers(_ATTRIBUTE_LIST.sub("", text).split("\n")))
    text = _clean_inline(text)
    return _STASHED.sub(lambda match: spans[int(match[1])], text)


def _without_liquid(text: str) -> str:
    """Remove Liquid, Jinja and Nunjucks tags; keep what a reader of the page would see of a
    Slack channel tag (its name) and of an alert (its title)."""
    text = _LIQUID_COMMENT.sub("", text)

    def visible(match: re.Match[str]) -> str:
        name, arguments = match[1].lower(), [a or b for a, b in _QUOTED.findall(match[2])]
        if name == "slack_channel" and arguments:
            return arguments[1] if len(arguments) > 1 and arguments[1] else f"#{arguments[0]}"
        if name in ("alert", "callout") and arguments and arguments[0].strip():
            return arguments[0].strip()
        return ""

    return _LIQUID.sub("", _LIQUID_TAG.sub(visible, text))


def _without_html(text: str) -> str:
    """Turn HTML inside Markdown into text: tables into labelled rows, h1-h6 lines into Markdown
    headings; scripts, styles and embedded players go; other tags go and their text stays."""
    text = _html_tables(_HIDDEN_ELEMENT.sub("", text))
    text = _HTML_HEADING_LINE.sub(lambda m: f"{'#' * int(m[1])} {_strip_tags(m[2])}", text)
    text = _HTML_BLOCK_TAG.sub("\n", _HTML_BREAK.sub("\n", text))
    return _strip_tags(text)


def _strip_tags(text: str) -> str:
    return _HTML_INLINE_TAG.sub("", text)


def _html_tables(text: str) -> str:
    """Replace each outermost <table>...</table> with its rows, one line each."""
    parts: list[str] = []
    depth = start = done = 0
    for match in _TABLE_TAG.finditer(text):
        if not match[1]:
            start = match.start() if depth == 0 else start
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                table = BeautifulSoup(text[start : match.end()], "html.parser").table
                rows = table_rows(table) if table else []
                parts += [text[done:start], "\n", "\n".join(rows), "\n"]
                done = match.end()
    return "".join(parts) + text[done:]


def table_rows(table: Tag) -> list[str]:
    """Write an HTML table as one line per row. With a header row (th cells, or a thead) each
    cell is labelled with its column's header ("Header: cell; Header: cell"); without one, a
    row that starts with a th cell, or a row of a two-column table, reads "first: rest"."""
    rows = [
        (row, cells)
        for row in table.find_all("tr")
        if row.find_parent("table") is table
        and (cells := row.find_all(["td", "th"], recursive=False))
    ]
    if not rows:
        return []
    grid = [[(cell.name == "th", _cell_text(cell)) for cell in cells] for _, cells in rows]
    header_row = rows[0][0].find_parent("thead") is not None or all(th for th, _ in grid[0])
    headers = [text for _, text in grid[0]] if header_row else []
    body = grid[1:] if header_row else grid
    if headers and not body:
        return [labelled_row([], headers)]
    two_columns = max(len(row) for row in grid) == 2
    lines = []
    for row in body:
        texts = [text for _, text in row]
        if not headers and len(texts) > 1 and (row[0][0] or two_columns):
            line = labelled_row([texts[0]], ["; ".join(filter(None, texts[1:]))])
        else:
            line = labelled_row(headers, texts)
        if line:
            lines.append(line)
    return lines


def _cell_text(cell: Tag) -> str:
    """A cell's text on one line, without the spaces get_text puts before punctuation."""
    text = " ".join(cell.get_text(" ").split())
    return _SPACE_BEFORE_PUNCTUATION.sub("", _SPACE_AFTER_BRACKET.sub(r"\1", text))


def labelled_row(headers: list[str], cells: list[str]) -> str:
    """Write one table row as "Header: cell; Header: cell"; a cell without a header stands alone,
    an empty cell is left out, and a lone cell spanning the row (a note) is written as it is."""
    if len(cells) == 1 and len(headers) > 1:
        return cells[0]
    pairs = []
    for n, cell in enumerate(cells):
        header = headers[n].strip().rstrip(":").strip() if n < len(headers) else ""
        if cell:
            pairs.append(f"{header}: {cell}" if header and header != cell else cell)
    return "; ".join(pairs)


def flatten_tables(soup: BeautifulSoup) -> None:
    """Replace every table of an HTML page with a <div> holding one <p> per labelled row."""
    for table in reversed(soup.find_all("table")):
        block = soup.new_tag("div")
        for line in table_rows(table):
            paragraph = soup.new_tag("p")
            paragraph.string = line
            block.append(paragraph)
        table.replace_with(block)


def _without_block_markers(lines: list[str]) -> Iterator[str]:
    """Drop admonition openers (keeping a quoted title as a line), Docusaurus ::: fences, quote
    markers, GitHub alert markers, link reference definitions and thematic breaks; dedent the
    bodies of MkDocs admonitions."""
    bodies: list[list[int]] = []  # [opener's indent, body's indent] of enclosing admonitions
    previous = ""
    for raw in lines:
        raw = raw.expandtabs(4)
        indent = len(raw) - len(raw.lstrip(" "))
        if raw.strip():
            while bodies and indent <= bodies[-1][0]:
                bodies.pop()
            if bodies and bodies[-1][1] < 0:
                bodies[-1][1] = indent
        line = raw[min(indent, bodies[-1][1]) :] if bodies and raw.strip() else raw
        if opener := _ADMONITION.match(line.strip()):
            bodies.append([indent, -1])
            line = (opener[1] or opener[2] or "").strip()
            if line:  # the title stands as a paragraph of its own
                yield line
                line = ""
        elif directive := _DIRECTIVE_FENCE.match(line):
            line = (directive[1] or directive[2] or "").strip()
        elif _REFERENCE_DEFINITION.match(line) or _is_thematic_break(line, previous):
            line = ""
        else:
            quoted = _QUOTE_MARKERS.match(line)
            line = _ALERT_MARKER.sub("", line[quoted.end() :]) if quoted else line
            line = _FOOTNOTE_DEFINITION.sub(r"\1", line)
        previous = line
        yield line


def _is_thematic_break(line: str, previous: str) -> bool:
    """A line of three or more - * or _; a --- line right under text is a setext underline."""
    return bool(_THEMATIC_BREAK.match(line)) and (line.strip()[0] != "-" or not previous.strip())


def _pipe_tables(lines: list[str]) -> Iterator[str]:
    """Write Markdown pipe tables as labelled rows; other lines pass through."""
    n = 0
    while n < len(lines):
        line = lines[n]
        following = lines[n + 1] if n + 1 < len(lines) else ""
        is_table = "|" in line and _TABLE_DELIMITER.match(following) and "-" in following
        if not is_table or not ("|" in following or line.strip().startswith("|")):
            yield line
            n += 1
            continue
        headers = _cells(line)
        n += 2
        while n < len(lines) and "|" in lines[n] and lines[n].strip():
            if row := labelled_row(headers, _cells(lines[n])):
                yield row
            n += 1


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [" ".join(cell.split()) for cell in _CELL_BAR.split(line)]


def _clean_inline(text: str) -> str:
    """Images go, links become their text, URLs their host name; emphasis marks and escapes go,
    entities are decoded; a line left holding only a list or emphasis marker goes."""
    text = _FOOTNOTE_REFERENCE.sub("", _IMAGE.sub("", text))
    text = _LINK.sub(lambda match: match[1], text)
    text = _AUTOLINK.sub(lambda match: _short_url(match[1]), text)
    text = _EMPTY_PARENTHESES.sub("", _BARE_URL.sub(lambda match: _short_url(match[0]), text))
    for pattern in (_STRONG, _STRIKETHROUGH, _EMPHASIS):
        text = pattern.sub(_first_group, text)
    text = _STRAY_STRONG.sub("", text)  # unpaired bold marks, as in "**Note:** **"
    text = html.unescape(_ESCAPE.sub(r"\1", text))
    return "\n".join("" if _BARE_MARKER.match(line) else line for line in text.split("\n"))


def _first_group(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group is not None)


def _short_url(url: str) -> str:
    """An e-mail address as it is; a URL as its host (and port): a reader cannot follow a link
    in an answer. Trailing punctuation, and a closing parenthesis the URL did not open, stay."""
    if "@" in url and "://" not in url:
        return url
    trail = ""
    while url and (
        url[-1] in ".,;:!?'\"]}" or (url[-1] == ")" and url.count("(") < url.count(")"))
    ):
        url, trail = url[:-1], url[-1] + trail
    host = urlsplit(url).netloc.rpartition("@")[2] or url
    return host.removeprefix("www.") + trail
