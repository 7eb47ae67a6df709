"""Safe Markdown for answers: formatting survives, script never does, citations become links."""

from knowledge.markdown import render_markdown, render_passage

LINKS = {1: "/documents/7/file/#page=3", 2: "/passages/42/"}


def test_formatting_is_kept():
    html = render_markdown("**Bold**, *italic* and `code`:\n\n- one\n- two")
    assert "<strong>Bold</strong>" in html and "<em>italic</em>" in html
    assert "<code>code</code>" in html and "<li>one</li>" in html


def test_raw_html_is_shown_as_text_never_run():
    html = render_markdown('<script>alert(1)</script> <img src=x onerror="alert(2)">')
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_markdown_images_and_script_links_are_dropped():
    html = render_markdown(
        "![x](https://evil.example/p.png) [y](javascript:alert(1)) [z](https://ok.example)"
    )
    assert "<img" not in html and 'href="javascript' not in html
    assert 'href="https://ok.example"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_citation_markers_become_links_to_their_sources():
    html = render_markdown("Leave is 25 days [1]. Ask the lead [1, 2].", LINKS)
    assert html.count('href="/documents/7/file/#page=3"') == 2
    assert '<a class="citation" href="/passages/42/" data-n="2"' in html


def test_markers_without_a_source_stay_text():
    html = render_markdown("See [3] and [1, 3].", LINKS)
    assert "citation" not in html and "[3]" in html and "[1, 3]" in html


def test_private_use_characters_cannot_forge_a_citation():
    html = render_markdown("\ue0001\ue001 text", LINKS)
    assert "citation" not in html and "1 text" in html


def test_a_passage_drops_template_tags_and_renders_its_markdown():
    html = render_passage(
        "Each upload is **queued** first.\n\n{% page 3 %}\n\n![diagram](x.png) Then `ingest`."
        " {{ site.title }} [2]"
    )
    assert "<strong>queued</strong>" in html and "<code>ingest</code>" in html
    assert "{%" not in html and "{{" not in html and "**" not in html
    assert "<img" not in html and "[2]" in html and "<a" not in html


def test_a_line_break_inside_a_chinese_paragraph_shows_no_space():
    from knowledge.markdown import render_passage

    html = render_passage("支持电子邮件（EML）、\n图片和纯文本。\n\n第二段。")
    assert "支持电子邮件（EML）、图片和纯文本。" in html
    assert html.count("<p>") == 2  # paragraphs stay apart
