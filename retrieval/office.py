"""Word (.docx) and PowerPoint (.pptx) files as text sections.

Every Office file first passes limits.guard_archive(), so a decompression bomb is refused
before any XML is parsed. Word documents are read in one streaming pass over
word/document.xml with lxml (linear in the file's size, memory bounded by one top-level block);
python-docx looked up each paragraph's style twice and took minutes on 100,000 paragraphs.
PowerPoint files give one page per slide: title, text boxes and tables in reading order, then
the speaker notes.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pptx
from lxml import etree
from pptx.shapes.base import BaseShape
from pptx.shapes.group import GroupShape

from retrieval.errors import CorruptDocumentError, EmptyDocumentError, ParseError
from retrieval.limits import ParseLimits, guard_archive
from retrieval.parsing import _clean_text, _SectionBuilder, _title
from retrieval.types import ParsedDocument, Section

logger = logging.getLogger(__name__)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_PARAGRAPH, _TABLE = f"{_W}p", f"{_W}tbl"
_KINDS = {"docx": "Word document", "pptx": "PowerPoint file"}
_HEADING_STYLE = re.compile(r"heading ([1-9])", re.I)


def parse_office(file_type: str, data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Read a "docx" or "pptx" file; raise TooLargeError past the limits, CorruptDocumentError
    when the file is damaged."""
    kind = _KINDS[file_type]
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            guard_archive(archive, limits, kind)
            if file_type == "docx":
                return _parse_docx(archive, filename)
        return _parse_pptx(data, filename)
    except ParseError:
        raise
    except Exception as error:
        logger.warning("Unreadable %s %r: %r", kind, filename, error)
        raise CorruptDocumentError(f"The {kind} is damaged and could not be read.") from error


# Word


def _parse_docx(archive: zipfile.ZipFile, filename: str) -> ParsedDocument:
    """Read body paragraphs and tables in order; Title and Heading N styles build the headings."""
    styles = _style_names(archive)
    builder = _SectionBuilder()
    with archive.open("word/document.xml") as stream:
        for element in _top_level_blocks(stream):
            if element.tag == _TABLE:
                builder.add_line(_table_text(element))
                continue
            style_id = element.find(f"{_W}pPr/{_W}pStyle")
            name = styles.get(style_id.get(f"{_W}val", "")) if style_id is not None else None
            style = (name or "").strip()
            level = _HEADING_STYLE.fullmatch(style)
            if level or style == "Title":
                builder.heading(int(level.group(1)) if level else 0, _paragraph_text(element))
            else:
                builder.add_line(_paragraph_text(element))
    return builder.document("docx", filename)


def _style_names(archive: zipfile.ZipFile) -> dict[str, str]:
    """Map style ids to style names ("Heading1" -> "heading 1")."""
    if "word/styles.xml" not in archive.namelist():
        return {}
    root = etree.fromstring(archive.read("word/styles.xml"), _xml_parser())
    return {
        style.get(f"{_W}styleId", ""): style.find(f"{_W}name").get(f"{_W}val", "")
        for style in root.iter(f"{_W}style")
        if style.find(f"{_W}name") is not None
    }


def _top_level_blocks(stream) -> Iterator[etree._Element]:
    """Yield each paragraph and table not nested in another one, then free it."""
    events = etree.iterparse(
        stream, events=("end",), tag=(_PARAGRAPH, _TABLE), resolve_entities=False, no_network=True
    )
    for _, element in events:
        if any(parent.tag in (_PARAGRAPH, _TABLE) for parent in element.iterancestors()):
            continue
        yield element
        element.clear(keep_tail=False)
        while element.getprevious() is not None:
            del element.getparent()[0]


def _paragraph_text(paragraph: etree._Element) -> str:
    """Text of a paragraph's runs (including text boxes), tabs and line breaks as in Word."""
    parts = []
    for node in paragraph.iter(f"{_W}t", f"{_W}tab", f"{_W}br", f"{_W}cr"):
        if node.tag == f"{_W}t":
            parts.append(node.text or "")
        else:
            parts.append("\t" if node.tag == f"{_W}tab" else "\n")
    return "".join(parts)


def _table_text(table: etree._Element) -> str:
    """One line per row, cells separated by " | " (a merged cell once)."""
    rows = []
    for row in table.iterchildren(f"{_W}tr"):
        cells = [
            " ".join(" ".join(_paragraph_text(p) for p in cell.iter(_PARAGRAPH)).split())
            for cell in row.iterchildren(f"{_W}tc")
        ]
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def _xml_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


# PowerPoint


def _parse_pptx(data: bytes, filename: str) -> ParsedDocument:
    """One section per slide (its page number), headed by the slide's title."""
    presentation = pptx.Presentation(BytesIO(data))
    sections, first_title = [], None
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join((title_shape.text_frame.text if title_shape else "").split())
        title_id = title_shape.shape_id if title_shape else None
        lines = [title] if title else []
        for shape in _reading_order(slide.shapes):
            if shape.shape_id != title_id:
                lines += _shape_lines(shape)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            lines += [f"Notes: {notes}"] if notes else []
        text = _clean_text("\n".join(lines))
        if text.strip():
            sections.append(Section(text, number, (title,) if title else ()))
        first_title = first_title or title
    if not sections:
        raise EmptyDocumentError("The presentation holds no text.")
    page_count = len(presentation.slides)
    title = _title(filename, presentation.core_properties.title, first_title)
    return ParsedDocument("pptx", title, sections, page_count)


def _reading_order(shapes) -> list[BaseShape]:
    """Shapes top to bottom, then left to right (their z-order says nothing about reading)."""
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _shape_lines(shape: Any) -> list[str]:
    """The text of a shape: a text box's paragraphs, a table's rows, a group's members."""
    if isinstance(shape, GroupShape):
        return [line for member in _reading_order(shape.shapes) for line in _shape_lines(member)]
    if getattr(shape, "has_table", False):
        return [
            " | ".join(" ".join(cell.text.split()) for cell in row.cells)
            for row in shape.table.rows
        ]
    if getattr(shape, "has_text_frame", False):
        return [paragraph.text for paragraph in shape.text_frame.paragraphs]
    return []
