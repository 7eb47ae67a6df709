"""Safe Markdown for answers: nothing in a document or an answer can run script in the page.

markdown-it renders with raw HTML switched off (so `<script>` stays text), nh3 then keeps only a
short list of tags and attributes (no images, no event handlers, no `javascript:` links), and
last the citation markers [n] become links that this module builds itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import nh3
from django.utils.html import escape
from markdown_it import MarkdownIt

from retrieval.text import CJK_RANGES

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}

# Private-use characters mark citations through rendering and sanitising; any already in the
# text are removed first, so only this module can produce a citation link.
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(r"\[(\s*\d+(?:\s*[,;]\s*\d+)*\s*)\]")
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


# Tags of the templates static-site generators read (Liquid, Jinja: {% page %}, {{ site.x }}):
# markup of the document's build, not words of the document.
_TEMPLATE_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)


# A line break inside a Chinese paragraph is no word break: rendered as a space it would show
# one between two characters ("电子邮件、 图片"), so it is dropped before rendering.
_CHINESE = f"[{CJK_RANGES}\u3000-\u303f\uff00-\uffef]"
_CHINESE_SOFT_BREAK = re.compile(f"(?<={_CHINESE})[ \t]*\n[ \t]*(?={_CHINESE})")


def render_passage(text: str) -> str:
    """A passage of a document (a chunk, a source's preview) as sanitised HTML: its Markdown
    rendered, template tags left out; markers like [1] in it stay plain text."""
    return render_markdown(_TEMPLATE_TAG.sub("", text))


def render_markdown(text: str, citation_urls: Mapping[int, str] | None = None) -> str:
    """Render an answer as sanitised HTML; markers [n] (or [1, 2]) whose n is in citation_urls
    become links to those URLs, other markers stay plain text."""
    urls = dict(citation_urls or {})
    text = _CHINESE_SOFT_BREAK.sub("", text.replace(_OPEN, "").replace(_CLOSE, ""))
    text = _MARKER.sub(lambda match: _mark_citations(match, urls), text)
    html = nh3.clean(
        _renderer.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return _PLACEHOLDER.sub(lambda match: _citation_link(int(match.group(1)), urls), html)


def _mark_citations(match: re.Match[str], urls: Mapping[int, str]) -> str:
    numbers = [int(part) for part in re.split(r"[,;]", match.group(1))]
    if not all(number in urls for number in numbers):
        return match.group(0)
    return "".join(f"{_OPEN}{number}{_CLOSE}" for number in numbers)


def _citation_link(number: int, urls: Mapping[int, str]) -> str:
    return (
        f'<a class="citation" href="{escape(urls[number])}" data-n="{number}" '
        f'target="_blank" rel="noopener">[{number}]</a>'
    )
