"""Files made to exhaust a worker: decompression bombs, huge images, endless TIFFs, encrypted
Office files. Each is refused with a clear error within seconds, and the process reading it
stays within bounded memory (measured in a child process)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from PIL import Image

from retrieval.errors import (
    CorruptDocumentError,
    ParseError,
    PasswordRequiredError,
    TooLargeError,
)
from retrieval.limits import ParseLimits
from retrieval.ocr import TesseractOcr
from retrieval.parsing import parse_document

REPO_ROOT = Path(__file__).resolve().parents[2]
MEGABYTE = 1024 * 1024
PEAK_RSS_LIMIT_MB = 500


@pytest.fixture(autouse=True)
def data_dir():
    """No Django needed: this replaces the suite-wide fixture that sets Django settings."""


def office_file(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "docx":
        document = docx.Document()
        document.add_paragraph("Hello")
        document.save(buffer)
    elif kind == "xlsx":
        book = openpyxl.Workbook()
        book.active.append(["Hello"])
        book.save(buffer)
    else:
        deck = pptx.Presentation()
        deck.slides.add_slide(deck.slide_layouts[1]).shapes.title.text = "Hello"
        deck.save(buffer)
    return buffer.getvalue()


MAIN_PART = {
    "docx": "word/document.xml",
    "xlsx": "xl/worksheets/sheet1.xml",
    "pptx": "ppt/slides/slide1.xml",
}
SMALL_PARAGRAPH = b"<w:p><w:r><w:t>x</w:t></w:r></w:p>"


def bomb(kind: str, megabytes: int, unit: bytes = SMALL_PARAGRAPH) -> bytes:
    """A real Office file whose main part is swapped for megabytes of repeated XML."""
    source = zipfile.ZipFile(io.BytesIO(office_file(kind)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in source.infolist():
            if member.filename != MAIN_PART[kind]:
                archive.writestr(member, source.read(member))
        block = unit * (MEGABYTE // len(unit))
        with archive.open(MAIN_PART[kind], "w", force_zip64=True) as stream:
            stream.write(b'<w:document xmlns:w="urn:x"><w:body>')
            for _ in range(megabytes):
                stream.write(block)
            stream.write(b"</w:body></w:document>")
    return buffer.getvalue()


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid black-and-white PNG of width x height pixels, a few kilobytes long."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    packer = zlib.compressobj(9)
    row = b"\x00" + bytes((width + 7) // 8)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def long_tiff(pages: int = 1000) -> bytes:
    frames = [Image.new("1", (64, 64), 1) for _ in range(pages)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def encrypted(kind: str) -> bytes:
    output = io.BytesIO()
    OOXMLFile(io.BytesIO(office_file(kind))).encrypt("s3cret", output)
    return output.getvalue()


# (file name, builder, error, text the message must hold)
HOSTILE: list[tuple[str, Callable[[], bytes], type[ParseError], str]] = [
    ("expands-to-300-mb.docx", lambda: bomb("docx", 300), TooLargeError, "expands to 300 MB"),
    ("small-paragraphs.docx", lambda: bomb("docx", 100), TooLargeError, "decompression bomb"),
    ("expands-to-300-mb.xlsx", lambda: bomb("xlsx", 300), TooLargeError, "expands to 300 MB"),
    ("expands-to-300-mb.pptx", lambda: bomb("pptx", 300), TooLargeError, "expands to 300 MB"),
    ("20000x20000.png", huge_png, TooLargeError, "pixels are not read"),
    ("1000-pages.tiff", long_tiff, TooLargeError, "1,000 pages"),
    ("password.xlsx", lambda: encrypted("xlsx"), PasswordRequiredError, "password-protected"),
    ("password.docx", lambda: encrypted("docx"), PasswordRequiredError, "password-protected"),
]


@pytest.mark.parametrize(
    ("name", "build", "error", "message"), HOSTILE, ids=[row[0] for row in HOSTILE]
)
def test_a_hostile_file_is_refused_within_seconds(name, build, error, message):
    data = build()
    started = time.monotonic()
    with pytest.raises(error, match=message):
        parse_document(data, name)
    assert time.monotonic() - started < 10


def test_too_many_xml_elements_are_refused_before_parsing():
    data = bomb("docx", 2)  # 2 MB of one-letter paragraphs: about 240,000 elements
    with pytest.raises(TooLargeError, match="more than 100,000 XML elements"):
        limits = ParseLimits(xml_elements=100_000, compression_ratio=10_000)
        parse_document(data, "many.docx", limits=limits)


def test_a_picture_over_the_pixel_limit_is_refused():
    buffer = io.BytesIO()
    Image.new("L", (3000, 2000), 255).save(buffer, "PNG")
    with pytest.raises(TooLargeError, match="3,000 x 2,000 pixels"):
        parse_document(buffer.getvalue(), "photo.png", limits=ParseLimits(image_pixels=5_000_000))


# The child reads its own peak from VmHWM: getrusage's ru_maxrss keeps the peak of the process
# image before exec, which for a child of pytest is pytest's own memory.
CHILD = """
import re, sys, time
from pathlib import Path
from retrieval.errors import ParseError
from retrieval.parsing import parse_document
data = open(sys.argv[1], "rb").read()
started = time.monotonic()
try:
    parse_document(data, sys.argv[1])
    outcome = "parsed"
except ParseError as error:
    outcome = type(error).__name__
status = Path("/proc/self/status").read_text()
peak_mb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024
print(outcome, peak_mb, time.monotonic() - started)
"""


@pytest.mark.slow
def test_hostile_files_leave_the_reading_process_within_bounded_memory(tmp_path):
    for name, build, error, _ in HOSTILE:
        path = tmp_path / name
        path.write_bytes(build())
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outcome, peak_mb, seconds = result.stdout.split()
        assert outcome == error.__name__, result.stderr
        assert int(peak_mb) < PEAK_RSS_LIMIT_MB, f"{name}: peak RSS {peak_mb} MB"
        assert float(seconds) < 10, f"{name}: {seconds} s"
        print(f"{name}: {outcome} in {float(seconds):.2f} s, peak RSS {peak_mb} MB")


def test_a_truncated_image_is_reported_as_damaged():
    buffer = io.BytesIO()
    Image.new("L", (300, 200), 255).save(buffer, "PNG")
    with pytest.raises(CorruptDocumentError, match="image is damaged"):
        parse_document(buffer.getvalue()[:60], "scan.png", ocr=TesseractOcr(command="/no/ocr"))
