"""Word and PowerPoint files made with python-docx and python-pptx, read back."""

from __future__ import annotations

import copy
import io
import time

import docx
import pptx
import pytest
from pptx.util import Inches

from retrieval.errors import CorruptDocumentError, EmptyDocumentError
from retrieval.parsing import detect_file_type, parse_document


@pytest.fixture(autouse=True)
def data_dir():
    """No Django needed: this replaces the suite-wide fixture that sets Django settings."""


def presentation() -> bytes:
    deck = pptx.Presentation()
    deck.core_properties.title = "Quarterly review"
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Results for the third quarter"
    first.placeholders[1].text = "Revenue grew 12 percent in the northern region."
    first.notes_slide.notes_text_frame.text = "Mention the new warehouse in Leeds."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "人员编制"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1)).table
    for row, values in enumerate((("团队", "人数"), ("销售部", "42"))):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    box = second.shapes.add_textbox(Inches(1), Inches(4), Inches(6), Inches(1))
    box.text_frame.text = "Hiring stops in December."
    deck.slides.add_slide(deck.slide_layouts[6])  # blank: no text, still counted
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def test_each_slide_is_a_page_with_its_title_text_tables_and_notes():
    document = parse_document(presentation(), "review.pptx")
    assert document.file_type == "pptx" and document.title == "Quarterly review"
    assert document.page_count == 3
    first, second = document.sections
    assert first.page == 1 and first.heading_path == ("Results for the third quarter",)
    assert first.text == (
        "Results for the third quarter\n"
        "Revenue grew 12 percent in the northern region.\n"
        "Notes: Mention the new warehouse in Leeds."
    )
    assert second.page == 2 and second.heading_path == ("人员编制",)
    assert "团队 | 人数\n销售部 | 42" in second.text
    assert second.text.endswith("Hiring stops in December.")


def test_a_presentation_without_text_is_empty():
    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[6])
    buffer = io.BytesIO()
    deck.save(buffer)
    with pytest.raises(EmptyDocumentError):
        parse_document(buffer.getvalue(), "blank.pptx")


def test_a_truncated_presentation_is_reported_as_damaged():
    data = presentation()
    assert detect_file_type(data, "review.pptx") == "pptx"
    with pytest.raises(CorruptDocumentError, match="damaged"):
        parse_document(data[: len(data) // 2], "review.pptx")


def test_a_word_document_keeps_text_boxes_breaks_and_merged_cells_once():
    document = docx.Document()
    document.add_heading("Leave policy", level=1)
    paragraph = document.add_paragraph("First line")
    paragraph.add_run().add_break()
    paragraph.add_run("second line\tafter a tab")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Grade"
    table.cell(0, 2).text = "Days"
    table.cell(1, 0).text, table.cell(1, 1).text, table.cell(1, 2).text = "A", "B", "25"
    buffer = io.BytesIO()
    document.save(buffer)
    parsed = parse_document(buffer.getvalue(), "leave.docx")
    text = parsed.sections[0].text
    assert parsed.sections[0].heading_path == ("Leave policy",)
    assert "First line\nsecond line after a tab" in text
    assert "Grade | Days\nA | B | 25" in text


@pytest.mark.slow
def test_a_word_document_of_100000_paragraphs_parses_in_linear_time():
    document = docx.Document()
    section_properties = document.element.body[-1]
    template = document.add_paragraph("Paragraph number 0 of the long report.")._p
    for number in range(1, 100_000):
        clone = copy.deepcopy(template)
        clone[-1][-1].text = f"Paragraph number {number} of the long report."
        section_properties.addprevious(clone)
    buffer = io.BytesIO()
    document.save(buffer)
    started = time.monotonic()
    parsed = parse_document(buffer.getvalue(), "long.docx")
    elapsed = time.monotonic() - started
    text = "\n".join(section.text for section in parsed.sections)
    assert "Paragraph number 99999 of the long report." in text
    assert elapsed < 20, f"{elapsed:.1f} s"
