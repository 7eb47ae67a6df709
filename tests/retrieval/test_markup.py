"""Document hygiene: front matter, template tags and other markup never reach the indexed text.

The last test reads the three real handbooks in ../shared/data/handbook (static-site sources
with YAML front matter, Liquid tags, kramdown attributes and admonitions) through the parser
and the chunker, as ingestion does.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from retrieval.chunking import chunk_sections
from retrieval.embedders import HashingEmbedder
from retrieval.errors import EmptyDocumentError
from retrieval.markup import FENCE, clean_markdown, fence_after, split_front_matter
from retrieval.parsing import parse_document
from retrieval.types import ParsedDocument

HANDBOOK = Path(__file__).resolve().parents[3] / "shared" / "data" / "handbook"


@pytest.fixture(autouse=True)
def data_dir():
    """Parsing needs no Django: this replaces the suite-wide fixture that sets Django settings."""


def parse(markdown: str, filename: str = "page.md") -> ParsedDocument:
    return parse_document(markdown.encode(), filename)


def text_of(document: ParsedDocument) -> str:
    return "\n".join(section.text for section in document.sections)


# Front matter and titles


def test_yaml_front_matter_gives_the_title_and_metadata_and_leaves_the_text():
    document = parse(
        "---\n"
        "title: 员工手册：请假\n"
        "description: 关于年假和病假的规定。\n"
        "keywords: [年假, 病假, leave]\n"
        "redirect_from:\n  - /leave/\n"
        "---\n\n"
        "每位员工每年享有十五天带薪年假。\n"
    )
    assert document.title == "员工手册：请假"  # Chinese punctuation is kept for readers
    assert document.metadata == {
        "description": "关于年假和病假的规定。",
        "keywords": "年假, 病假, leave",
        "redirect_from": "/leave/",
    }
    assert text_of(document) == "每位员工每年享有十五天带薪年假。"
    assert document.warnings == []


def test_toml_front_matter_gives_the_title_and_metadata():
    document = parse(
        '+++\ntitle = "請假規定"\nkeywords = ["特休", "病假"]\ndraft = false\n+++\n\n'
        "# 第一章\n\n員工每年享有十五天特休。\n"
    )
    assert document.title == "請假規定"
    assert document.metadata == {"keywords": "特休, 病假", "draft": "False"}
    assert text_of(document) == "第一章\n\n員工每年享有十五天特休。"
    assert document.sections[0].heading_path == ("第一章",)


def test_without_a_front_matter_title_the_first_heading_then_the_file_name_is_the_title():
    with_heading = parse("---\nkeywords: leave\n---\n\nIntro.\n\n## 请假\n\nTen days.\n")
    assert with_heading.title == "请假" and with_heading.metadata == {"keywords": "leave"}
    plain = parse("---\ndescription: About leave.\n---\nEveryone gets ten days.\n", "leave_pay.md")
    assert plain.title == "leave_pay" and text_of(plain) == "Everyone gets ten days."


def test_broken_yaml_front_matter_is_read_line_by_line_with_a_warning():
    document = parse(
        "---\ntitle: Leave: the rules\ndescription: Everything about leave\n---\nTen days.\n"
    )
    assert document.title == "Leave: the rules"
    assert document.metadata == {"description": "Everything about leave"}
    assert text_of(document) == "Ten days."
    assert document.warnings == [
        "The front matter is not valid YAML (line 2); its fields were read line by line."
    ]


def test_a_leading_rule_around_prose_is_not_front_matter():
    markdown = "---\nThis is a plain paragraph, not fields.\n\nAnother one.\n---\n"
    assert split_front_matter(markdown) == (None, markdown)
    assert "This is a plain paragraph, not fields." in text_of(parse(markdown))


def test_yaml_aliases_cannot_blow_up_the_metadata():
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{name}: &{name} [{', '.join(['*' + below] * 9)}]"
        for below, name in zip("abcdefg", "bcdefgh", strict=True)
    ]  # h would be 9**8 x's written out
    document = parse("---\ntitle: Bomb\n" + "\n".join(levels) + "\n---\nBody.\n")
    assert document.title == "Bomb" and text_of(document) == "Body."
    assert all(0 < len(value) <= 10_000 for value in document.metadata.values())


def test_a_file_of_front_matter_alone_holds_no_text():
    with pytest.raises(EmptyDocumentError):
        parse("---\ntitle: Moved\nredirect_to: https://example.org/\n---\n")


# Template tags, attribute lists, comments


def test_liquid_tags_leave_the_text_but_what_a_reader_sees_of_them_stays():
    document = parse(
        "---\ntitle: Travel\n---\n"
        '{% alert "Updated travel guidance (07/13/2021)" %}\n'
        '  Book through [Concur]({% page "/tools/concur/" %}) and ask in '
        '{% slack_channel "travel" %} or {% slack_channel "g-consult" "the Consulting Guild" %}.\n'
        "{% endalert %}\n"
        "Reimbursement takes {{ site.days }} ten days.{% comment %}TODO link{% endcomment %}\n"
        '{% image "_img/map.png" "a map" %}\n'
        "{# a Jinja comment #}Receipts are needed.\n"
    )
    assert text_of(document) == (
        "Updated travel guidance (07/13/2021)\n"
        "  Book through Concur and ask in #travel or the Consulting Guild.\n\n"
        "Reimbursement takes ten days.\n\nReceipts are needed."
    )


def test_code_blocks_keep_their_template_tags_unless_the_page_is_a_site_template():
    code = "```jinja\n{% for item in items %}{{ item }}{% endfor %}\n```\n"
    ordinary = parse("# Templates\n\nA loop:\n\n" + code)
    assert "{% for item in items %}{{ item }}{% endfor %}" in text_of(ordinary)
    assert "```" not in text_of(ordinary)
    site = parse("---\ntitle: Templates\n---\nA loop:\n\n" + code)
    assert "{%" not in text_of(site) and "A loop:" in text_of(site)


def test_kramdown_attribute_lists_heading_ids_and_html_comments_leave_the_text():
    document = parse(
        "# Reading {#reading}\n\n"
        '* [Netflix](https://netflixtechblog.com/post-mortem){:target="_blank" } post-mortem\n'
        "{: .usa-list }\n"
        "Kept <!-- hidden remark --> words.\n"
        "<!--\nA whole\nhidden paragraph\n-->\n"
        "閱讀清單{:.note}\n"
    )
    assert document.title == "Reading"
    assert text_of(document) == "Reading\n\n* Netflix post-mortem\n\nKept words.\n\n閱讀清單"


@pytest.mark.parametrize(
    "junk", ["{%", "{{", "{# ", "<!--", "<script>", "{:", "~~a ", "__a ", "**a ", "[", "<table>"]
)
def test_unclosed_markup_costs_linear_time(junk):
    started = time.perf_counter()
    document = parse("# Junk\n\n" + junk * 20000 + "\n\nThe end.\n")
    assert time.perf_counter() - started < 5  # a regular expression that rescans takes minutes
    assert text_of(document).endswith("The end.")


# Admonitions


def test_admonition_openers_go_and_their_titles_and_bodies_stay():
    document = parse(
        "# Severity\n\n"
        '!!! tip "Always Assume The Worst"\n'
        "     If you are unsure, **treat it as the higher one**.\n\n"
        "     Review it during the postmortem.\n\n"
        "??? note\n    A collapsed note without a title.\n\n"
        '???+ aside hide-arrow "Is the IC a dictator?"\n'
        "    Only in the sense that they are in charge.\n\n"
        "After the boxes.\n"
    )
    assert text_of(document) == (
        "Severity\n\nAlways Assume The Worst\n\n"
        "If you are unsure, treat it as the higher one.\n\n"
        "Review it during the postmortem.\n\n"
        "A collapsed note without a title.\n\n"
        "Is the IC a dictator?\n\n"
        "Only in the sense that they are in charge.\n\n"
        "After the boxes."
    )


def test_nested_admonitions_are_dedented_level_by_level():
    document = parse('!!! note "外层"\n    外层正文。\n\n    !!! warning\n        内层正文。\n')
    assert text_of(document) == "外层\n\n外层正文。\n\n内层正文。"


def test_docusaurus_and_github_admonitions_lose_their_markers():
    document = parse(
        ":::note\nA Docusaurus note.\n:::\n\n"
        ":::tip[提示]\n先備份。\n:::\n\n"
        "> [!NOTE]\n> Keep your receipts.\n\n"
        "> [!WARNING] Do not share passwords.\n\n"
        "> A quoted remark.\n"
    )
    assert text_of(document) == (
        "A Docusaurus note.\n\n提示\n先備份。\n\n"
        "Keep your receipts.\n\nDo not share passwords.\n\nA quoted remark."
    )


# Images, links and URLs


def test_images_go_links_keep_their_text_and_urls_shrink_to_their_host():
    document = parse(
        "# Links\n\n"
        "![Org chart](img/org.png)\n"
        "[![build](https://ci.example.org/badge.svg)](https://ci.example.org/)\n"
        'See the [leave policy](https://hr.example.org/leave "Leave") and the [FAQ][faq].\n'
        "Mail <help@example.org> or visit <https://www.example.org/help>.\n"
        "Docs live at https://docs.example.org/guide/start.html (the start page).\n"
        "Read [the notes](<https://example.org/a b (c)>) first.\n"
        "- ![only an image](x.png)\n"
        "- 链接文字：[请假制度](https://example.cn/qj)。\n\n"
        "[faq]: https://example.org/faq\n"
    )
    assert text_of(document) == (
        "Links\n\n"
        "See the leave policy and the FAQ.\n"
        "Mail help@example.org or visit example.org.\n"
        "Docs live at docs.example.org (the start page).\n"
        "Read the notes first.\n\n"
        "- 链接文字：请假制度。"
    )


def test_emphasis_marks_go_and_inline_code_stays_verbatim():
    document = parse(
        "**Bold** and *italic* and _underscored_ and ~~struck~~ words, a snake_case_name,\n"
        "a **bold phrase\nacross lines**, 2 * 3 * 4, and `code with [x](y) and **stars**`.\n"
        "**重要：**请提前**两周**申请，*務必*準時。\n"
        "A footnote[^1], a star in 2*3 and *中文*English.\n\n"
        "[^1]: The footnote's own text.\n"
    )
    assert text_of(document) == (
        "Bold and italic and underscored and struck words, a snake_case_name,\n"
        "a bold phrase\nacross lines, 2 * 3 * 4, and code with [x](y) and **stars**.\n"
        "重要：请提前两周申请，務必準時。\n"
        "A footnote, a star in 2*3 and 中文English.\n\n"
        "The footnote's own text."
    )


# Tables


SEVERITY_TABLE = """<table class="custom-table">
  <thead>
    <tr><th>Severity</th><th>Description</th><th>Typical Response</th></tr>
  </thead>
  <tbody>
    <tr>
      <td>SEV-1</td>
      <td>
        <p>Critical issue that warrants public notification.</p>
        <ul><li>The system is in a critical state.</li></ul>
      </td>
      <td>
        <p>Major incident response.</p><ul><li>Page an IC in Slack <code>!ic page</code>.</li></ul>
      </td>
    </tr>
    <tr><td colspan="3">Anything above this line is a "Major Incident".</td></tr>
    <tr><td>SEV-3</td><td>Stability issues.</td><td></td></tr>
  </tbody>
</table>"""


def test_an_html_table_in_markdown_becomes_rows_labelled_by_their_headers():
    document = parse("# Severity levels\n\nLevels in use:\n\n" + SEVERITY_TABLE + "\n\nAfter.\n")
    assert text_of(document) == (
        "Severity levels\n\nLevels in use:\n\n"
        "Severity: SEV-1; Description: Critical issue that warrants public notification. "
        "The system is in a critical state.; Typical Response: Major incident response. "
        "Page an IC in Slack !ic page.\n"
        'Anything above this line is a "Major Incident".\n'
        "Severity: SEV-3; Description: Stability issues.\n\nAfter."
    )


def test_a_key_value_table_reads_key_colon_value():
    document = parse(
        "# 芝加哥办公室\n\n<table><tbody>\n"
        "<tr><td><strong>地址</strong></td><td>230 S. Dearborn St.<br />Chicago</td></tr>\n"
        "<tr><th>Slack</th><td>#chitown</td></tr>\n</tbody></table>\n"
    )
    assert text_of(document) == "芝加哥办公室\n\n地址: 230 S. Dearborn St. Chicago\nSlack: #chitown"


def test_an_html_page_table_becomes_labelled_rows_and_its_meta_tags_metadata():
    page = (
        '<html><head><title>Severity</title><meta name="description" content="SEV levels.">'
        '<meta name="keywords" content="sev, incident"></head><body><h1>Levels</h1>'
        + SEVERITY_TABLE
        + "</body></html>"
    )
    document = parse_document(page.encode(), "severity.html")
    assert document.metadata == {"description": "SEV levels.", "keywords": "sev, incident"}
    text = text_of(document)
    assert "Severity: SEV-3; Description: Stability issues." in text
    assert "Severity: SEV-1; Description: Critical issue" in text and "|" not in text


def test_a_pipe_table_becomes_labelled_rows_without_bars():
    document = parse(
        "# 假期\n\n"
        "| 假期类型 | 天数 | Notes |\n"
        "| :------- | ---: | ----- |\n"
        "| 年假 | 15 天 | [政策](https://example.cn/) |\n"
        "| **病假** | 10 天 | |\n"
        "| Parental \\| adoption | 12 weeks | paid |\n\n"
        "Next paragraph | with a bar.\n"
    )
    assert text_of(document) == (
        "假期\n\n"
        "假期类型: 年假; 天数: 15 天; Notes: 政策\n"
        "假期类型: 病假; 天数: 10 天\n"
        "假期类型: Parental | adoption; 天数: 12 weeks; Notes: paid\n\n"
        "Next paragraph | with a bar."
    )


def test_fenced_code_is_kept_verbatim_and_the_fence_helpers_track_it():
    code = "~~~\n| a | b |\n|---|---|\n[x](y)\n~~~\n"
    assert clean_markdown("Intro with a [link](https://x.org).\n\n" + code) == (
        "Intro with a link.\n\n" + code
    )
    assert FENCE.match("```python")[1] == "```" and FENCE.match("    ```") is None
    assert fence_after(None, "```") == "```" and fence_after("```", "```") is None
    assert fence_after("````", "```") == "````"


def test_a_two_character_chinese_heading_is_a_title():
    assert parse("# 请假\n\n每年十五天。\n").title == "请假"
    assert parse("# 請假\n\n每年十五天。\n").title == "請假"


# The real handbooks

ADMONITION_OPENER = re.compile(
    r"^\s*(?:!!!|\?\?\?|:::)|\[!(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]", re.M | re.I
)
FIELD_LINE = re.compile(r"^[a-z_][\w-]*:\s*\S")  # "keywords: parental, parent, ..."


def front_matter_lines(raw: str) -> set[str]:
    """The `key: value` lines of a file's own front matter that do not also appear in its code
    blocks (a page about front matter shows examples of it in code)."""
    match = re.match(r"---[ \t]*\n(.*?)\n---[ \t]*\n", raw, re.S)
    if not match:
        return set()
    fields = {line.strip() for line in match[1].split("\n") if FIELD_LINE.match(line)}
    code: set[str] = set()
    fence = None
    for line in raw[match.end() :].split("\n"):
        mark = (FENCE.match(line) or [None, None])[1]
        if fence and not mark:
            code.add(line.strip())
        fence = fence_after(fence, mark)
    return fields - code


def test_no_chunk_of_the_handbooks_holds_front_matter_template_tags_or_admonition_syntax():
    files = sorted(HANDBOOK.rglob("*.md"))
    assert len(files) >= 1165, f"the handbook corpus is missing from {HANDBOOK}"
    embedder = HashingEmbedder()
    problems: list[str] = []
    documents = chunks = empty = 0
    texts: dict[str, str] = {}
    for path in files:
        raw = path.read_text(encoding="utf-8")
        name = str(path.relative_to(HANDBOOK))
        try:
            document = parse_document(path.read_bytes(), path.name)
        except EmptyDocumentError:
            # 3 empty files and 8 redirect stubs that hold nothing but front matter
            assert not re.sub(r"\A---\n.*?\n---\n", "", raw, flags=re.S).strip(), name
            empty += 1
            continue
        documents += 1
        texts[name] = text_of(document)
        fields = front_matter_lines(raw)
        title = document.title
        if not title.strip() or FIELD_LINE.match(title) or title in fields or "{" in title:
            problems.append(f"{name}: title {title!r}")
        pieces = chunk_sections(
            document.sections, embedder.count_tokens, embedder.split_tokens, 200, 40, 254
        )
        chunks += len(pieces)
        for piece in pieces:
            lines = {line.strip() for line in piece.text.split("\n")}
            for marker in ("{%", "{:"):
                if marker in piece.text:
                    problems.append(f"{name}: {marker} in {piece.text!r}")
            if found := ADMONITION_OPENER.search(piece.text):
                problems.append(f"{name}: admonition opener {found[0]!r}")
            if leaked := lines & fields:
                problems.append(f"{name}: front matter {sorted(leaked)}")
    assert problems == [], "\n".join(problems)
    assert (documents, empty) == (1159, 11)
    assert chunks > 10000
    severity = texts["pagerduty-incident-response/docs/before/severity_levels.md"]
    assert "Severity: SEV-1; Description: Critical issue that warrants public" in severity
    leave = texts["18f-tts-handbook/pages/travel-and-leave/leave.md"]
    assert "keywords:" not in leave and "Before you take leave, check out of office" in leave
