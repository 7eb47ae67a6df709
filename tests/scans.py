"""Scanned pages made from real text: prose of the handbooks and of the CMRC 2018 corpus drawn
onto pages with Pillow (Noto Sans CJK, from Debian's fonts-noto-cjk), image-only PDFs of them,
and the character error rate of OCR against the text drawn. Used by the OCR tests and by
bench/ingest.py --ocr."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from unicodedata import normalize

from PIL import Image, ImageDraw, ImageFont

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
PAGE_INCHES = (8.27, 11.69)  # A4
_TOKEN = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]|[^\s\u2e80-\u9fff]+\s*|\s+")
_PROSE = re.compile(r"^[A-Z][^#*`|\[\]<>_]{80,}[.!?]$")


def english_paragraphs(count: int) -> list[str]:
    """Plain prose paragraphs (no Markdown syntax) from the PagerDuty incident handbook."""
    folder = SHARED_DATA / "handbook" / "pagerduty-incident-response" / "docs"
    found: list[str] = []
    for path in sorted(folder.rglob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if _PROSE.match(line.strip()) and line.strip() not in found:
                found.append(line.strip())
            if len(found) == count:
                return found
    return found


def chinese_paragraphs(count: int, skip: int = 0) -> list[str]:
    """Contexts of the CMRC 2018 corpus (Simplified Chinese Wikipedia paragraphs)."""
    lines = (SHARED_DATA / "cmrc2018" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[skip : skip + count]]


def draw_page(paragraphs: list[str], dpi: int = 200, points: float = 12) -> tuple[Image.Image, str]:
    """A white A4 page in grey with the paragraphs wrapped into 1-inch margins, and the text
    that fitted on it (the reference for the error rate)."""
    width, height = (round(inches * dpi) for inches in PAGE_INCHES)
    font = ImageFont.truetype(str(FONT), round(points * dpi / 72))
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    y, line_height = dpi, round(points * dpi / 72 * 1.6)
    drawn: list[str] = []
    for paragraph in paragraphs:
        for line in _wrapped(paragraph, font, width - 2 * dpi):
            if y + line_height > height - dpi:
                return page, "\n".join(drawn)
            draw.text((dpi, y), line, font=font, fill=0)
            drawn.append(line)
            y += line_height
        y += line_height // 2
    return page, "\n".join(drawn)


def _wrapped(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Lines no wider than width: breaks between words, or between any two CJK characters."""
    lines, line = [], ""
    for token in _TOKEN.findall(text):
        if line and font.getlength(line + token.rstrip()) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    return [*lines, line.rstrip()] if line.strip() else lines


def image_pdf(pages: list[Image.Image], dpi: int = 200) -> bytes:
    """An image-only PDF (no text layer) with one page per image, as a scanner makes."""
    buffer = io.BytesIO()
    pages[0].save(buffer, "PDF", save_all=True, append_images=pages[1:], resolution=dpi)
    return buffer.getvalue()


def character_error_rate(reference: str, recognised: str) -> float:
    """Edit distance between the two texts over the reference's length; whitespace is ignored
    and both are NFKC-normalised as the parsers do (full-width punctuation counts as ASCII)."""
    expected, got = ("".join(normalize("NFKC", text).split()) for text in (reference, recognised))
    previous = list(range(len(got) + 1))
    for i, char in enumerate(expected, start=1):
        current = [i]
        for j, other in enumerate(got, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            )
        previous = current
    return previous[-1] / max(len(expected), 1)
