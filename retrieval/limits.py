"""Bounds on the work one file may cause, checked before a parser is let loose on it.

Office files are zip archives of XML: a small upload can expand to gigabytes (a decompression
bomb) or hold millions of tiny elements that a DOM parser turns into millions of objects.
guard_archive() reads the archive's directory (no decompression) and then streams each XML
member once, counting bytes and elements, so that nothing larger than the limits is ever parsed.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

from retrieval.errors import CorruptDocumentError, TooLargeError

_READ_BLOCK = 1024 * 1024
# Deflate seldom packs real XML better than about 30:1; bombs reach 1000:1. Members below
# _RATIO_FLOOR bytes are small whatever their ratio.
_RATIO_FLOOR = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """What one file may cost to parse; each limit refuses the file with TooLargeError.

    unpacked_bytes: total uncompressed size of an archive's members (Office files).
    compression_ratio: largest uncompressed/compressed ratio of a member over 1 MB.
    xml_elements: XML elements in all of an archive's XML members together.
    sheet_cells: cells of a spreadsheet (all sheets together; CSV fields count as cells).
    image_pixels: pixels of one image or rendered page (width x height).
    image_pages: frames of an image file (multi-page TIFF) and scanned PDF pages to OCR.
    """

    unpacked_bytes: int = 256 * 1024 * 1024
    compression_ratio: int = 200
    xml_elements: int = 5_000_000
    sheet_cells: int = 1_000_000
    image_pixels: int = 100_000_000
    image_pages: int = 500


def guard_archive(archive: zipfile.ZipFile, limits: ParseLimits, kind: str) -> None:
    """Refuse an archive whose members would expand past the limits; kind names the file type
    in messages ("Word document"). Raises TooLargeError or CorruptDocumentError."""
    members = archive.infolist()
    declared = sum(member.file_size for member in members)
    if declared > limits.unpacked_bytes:
        raise TooLargeError(_expands(kind, declared, limits))
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _RATIO_FLOOR and ratio > limits.compression_ratio:
            raise TooLargeError(
                f"The {kind} looks like a decompression bomb: {member.filename} expands "
                f"{ratio:.0f} times; it was not read."
            )
    elements = 0
    for member in members:
        if member.filename.endswith((".xml", ".rels")):
            elements += _count_elements(archive, member, kind)
            if elements > limits.xml_elements:
                raise TooLargeError(
                    f"The {kind} holds more than {limits.xml_elements:,} XML elements; "
                    "split it into smaller files."
                )


def _count_elements(archive: zipfile.ZipFile, member: zipfile.ZipInfo, kind: str) -> int:
    """Count start tags (an upper bound of elements) while streaming a member once."""
    count = 0
    try:
        with archive.open(member) as stream:
            while block := stream.read(_READ_BLOCK):
                count += block.count(b"<") - block.count(b"</") - block.count(b"<?")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise CorruptDocumentError(f"The {kind} is damaged and could not be read.") from error
    return count


def _expands(kind: str, size: int, limits: ParseLimits) -> str:
    return (
        f"The {kind} expands to {size // (1024 * 1024):,} MB when unpacked, over the "
        f"{limits.unpacked_bytes // (1024 * 1024):,} MB limit; it was not read."
    )
