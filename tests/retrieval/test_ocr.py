"""OCR with the real Tesseract: pages drawn from real English and Chinese text, scanned into
image-only PDFs and image files, read back page by page."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfWriter

from retrieval.errors import MissingDependencyError, NoTextLayerError
from retrieval.ocr import TesseractOcr
from retrieval.parsing import parse_document
from tests.scans import (
    character_error_rate,
    chinese_paragraphs,
    draw_page,
    english_paragraphs,
    image_pdf,
)

PDFS = Path(__file__).resolve().parents[3] / "shared" / "data" / "pdfs"
OCR = TesseractOcr(dpi=200)  # the default languages: eng+chi_sim+chi_tra
# Tesseract 5.3's character error rate on these clean 12 pt pages: 0% in English, 7% in Chinese
# (look-alike characters and brackets); the bounds leave room for other versions.
ENGLISH_CER, CHINESE_CER = 0.03, 0.12

pytestmark = pytest.mark.usefixtures("tesseract")


@pytest.fixture(autouse=True)
def data_dir():
    """No Django needed: this replaces the suite-wide fixture that sets Django settings."""


@pytest.fixture(scope="module")
def english() -> tuple[Image.Image, str]:
    return draw_page(english_paragraphs(2))


@pytest.fixture(scope="module")
def chinese() -> tuple[Image.Image, str]:
    return draw_page(chinese_paragraphs(1, skip=1))


def half_scanned(scan: Image.Image) -> bytes:
    """A PDF of a born-digital page (with its text layer) followed by a scanned one."""
    writer = PdfWriter()
    writer.append(io.BytesIO((PDFS / "zen_of_python_corrupted.pdf").read_bytes()))
    writer.append(io.BytesIO(image_pdf([scan])))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def texts_by_page(data: bytes, name: str, ocr: TesseractOcr | None = OCR) -> dict[int, str]:
    document = parse_document(data, name, ocr=ocr)
    return {section.page: section.text for section in document.sections}


@pytest.mark.slow
def test_it_reads_an_image_only_pdf_in_english_and_chinese_page_by_page(english, chinese):
    progress: list[tuple[int, int]] = []
    document = parse_document(
        image_pdf([english[0], chinese[0]]),
        "scan.pdf",
        ocr=OCR,
        progress=lambda done, total: progress.append((done, total)),
    )
    pages = {section.page: section.text for section in document.sections}
    assert document.page_count == 2 and set(pages) == {1, 2}
    assert character_error_rate(english[1], pages[1]) < ENGLISH_CER
    assert character_error_rate(chinese[1], pages[2]) < CHINESE_CER
    assert "It is a cut-down version of our internal documentation" in " ".join(pages[1].split())
    assert "锣鼓经是大陆传统器乐及戏曲里面常用的打击乐记谱方法" in "".join(pages[2].split())
    assert progress == [(1, 2), (2, 2)]
    assert document.warnings == [
        "2 of 2 page(s) were read with OCR (pages 1, 2); their text may hold recognition errors"
    ]


@pytest.mark.slow
def test_only_pages_without_a_text_layer_are_read_with_ocr(english):
    document = parse_document(half_scanned(english[0]), "mixed.pdf", ocr=OCR)
    pages = {section.page: section.text for section in document.sections}
    assert "Beautiful is better than ugly." in pages[1]
    assert character_error_rate(english[1], pages[2]) < ENGLISH_CER
    assert document.warnings[-1].startswith("1 of 2 page(s) were read with OCR (pages 2)")


@pytest.mark.slow
def test_it_reads_the_scanned_manifest_pdfs_on_their_pages():
    scanned = texts_by_page((PDFS / "175.pdf").read_bytes(), "175.pdf")
    assert set(scanned) == {1, 2}
    assert "Oversize Tire Accessory Kit" in scanned[1]
    assert "Main Gear" in scanned[2]
    cartoon = texts_by_page((PDFS / "pdf-with-jbig2.pdf").read_bytes(), "pdf-with-jbig2.pdf")
    assert "Doesn't" in cartoon[1]


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_it_reads_an_image_as_a_one_page_document(image_format):
    page, text = draw_page(english_paragraphs(1))
    buffer = io.BytesIO()
    page.crop((0, 0, page.width, page.height // 3)).save(buffer, image_format)
    document = parse_document(buffer.getvalue(), f"note.{image_format.lower()}", ocr=OCR)
    assert document.file_type == "image" and document.page_count == 1
    assert character_error_rate(text, document.sections[0].text) < ENGLISH_CER


@pytest.mark.slow
def test_each_frame_of_a_tiff_is_a_page_turned_upright(english):
    sideways = english[0].rotate(90, expand=True)
    buffer = io.BytesIO()
    english[0].save(buffer, "TIFF", save_all=True, append_images=[sideways])
    pages = texts_by_page(buffer.getvalue(), "scan.tiff")
    assert set(pages) == {1, 2}
    assert character_error_rate(english[1], pages[2]) < ENGLISH_CER


def test_without_ocr_a_scanned_pdf_still_says_it_needs_ocr():
    with pytest.raises(NoTextLayerError, match="needs OCR"):
        parse_document((PDFS / "175.pdf").read_bytes(), "175.pdf")


def test_a_missing_ocr_program_names_the_page_and_what_to_install():
    absent = TesseractOcr(command="/nonexistent/tesseract")
    started = time.monotonic()
    with pytest.raises(MissingDependencyError, match=r"^Scanned page 1 needs OCR: install tess"):
        parse_document((PDFS / "pdf-with-jbig2.pdf").read_bytes(), "scan.pdf", ocr=absent)
    assert time.monotonic() - started < 5


def test_a_pdf_with_text_is_indexed_without_its_scanned_pages_when_ocr_is_missing(english):
    absent = TesseractOcr(command="/nonexistent/tesseract")
    document = parse_document(half_scanned(english[0]), "mixed.pdf", ocr=absent)
    assert [section.page for section in document.sections] == [1]
    assert any("Scanned page 2 needs OCR" in warning for warning in document.warnings)


def test_a_missing_language_names_its_package():
    with pytest.raises(MissingDependencyError, match="install tesseract-ocr-klingon"):
        TesseractOcr("eng+klingon").ensure_installed()
