"""Turn an uploaded file (PDF, DOCX, HTML, Markdown or plain text) into text sections.

detect_file_type() judges the content first and the file name only as a hint; parse_document()
returns a ParsedDocument or raises a ParseError subclass whose message can be shown to a user.
Library exceptions are logged here and never escape raw. PDFs are read with pypdf; pdfium
takes over for files pypdf cannot open and for pages where pypdf finds nothing or mojibake.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
import zipfile
from collections.abc import Callable
from functools import lru_cache
from io import BytesIO
from pathlib import PureWindowsPath
from typing import TYPE_CHECKING

import charset_normalizer
import pypdfium2
from bs4 import BeautifulSoup, NavigableString, Tag
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from retrieval.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    MissingDependencyError,
    NoTextLayerError,
    ParseError,
    PasswordRequiredError,
    UnsupportedTypeError,
    WrongPasswordError,
)
from retrieval.limits import ParseLimits
from retrieval.markup import FENCE, clean_markdown, fence_after, flatten_tables, split_front_matter
from retrieval.types import ParsedDocument, Section

if TYPE_CHECKING:
    from PIL import Image

    from retrieval.ocr import ScannedPageReader, TesseractOcr

logger = logging.getLogger(__name__)

PageReader = Callable[[int], str | None]  # page number -> clean text; "" when none, None on failure
Progress = Callable[[int, int], None]  # (pages done, pages in all)
DEFAULT_LIMITS = ParseLimits()

_MAGIC = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"MZ\x90\x00", "a Windows program"),
    (b"\x7fELF", "a Linux program"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Office file (.doc, .xls, .ppt); save it as .docx or PDF"),
)
_PDF_MAGIC = re.compile(rb"%PDF-\d")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")  # PNG, JPEG, TIFF
# An encrypted Office file is an OLE container with an EncryptedPackage stream (UTF-16 name).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_OLE_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
_OFFICE_PASSWORD = (
    "This Office file is password-protected; save it again without a password and upload that."
)
_OFFICE_PARTS = {
    "word/document.xml": "docx",
    "ppt/presentation.xml": "pptx",
    "xl/workbook.xml": "xlsx",
}
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_HTML_START = re.compile(
    r"(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.I | re.S
)
_HTML_CLOSING_TAG = re.compile(r"</(p|div|span|a|li|td|tr|h[1-6]|ul|ol|table|section)>", re.I)
_MARKDOWN_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.M)
_MARKDOWN_FEATURE = re.compile(
    r"^ {0,3}(```|~~~)|^[ \t]*[-*+][ \t]+\S|\[[^\]\n]+\]\([^)\s]+\)|\*\*[^*\n]+\*\*", re.M
)
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\ufeff\ufffe\uffff\ud800-\udfff]")
_FILENAME_LIKE = re.compile(r"\.(pdf|docx?|txt|rtf|odt|tex|dvi|ps|indd|html?|xlsx?|pptx?)$", re.I)
_CJK_SCRIPT = re.compile(r"CJK|HIRAGANA|KATAKANA(-HIRAGANA)?|IDEOGRAPHIC|HANGUL|BOPOMOFO|\w+WIDTH")
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_BLOCK = re.compile(
    r"p|div|section|article|main|header|footer|aside|li|[uo]l|d[ltd]|table|tr|br|hr|pre|blockquote"
)
_PDF_UNREADABLE = "The PDF is truncated or damaged and could not be read."
_PDF_PASSWORD_REQUIRED = "This PDF is password-protected; give its password to ingest it."
_PDF_WRONG_PASSWORD = "The password given does not open this PDF."
_DOCX_DAMAGED = "The Word document is damaged and could not be read."


def detect_file_type(data: bytes, filename: str = "") -> str:
    """Return "pdf", "docx", "html", "markdown" or "text", judged from the content first."""
    return _sniff(data, filename)[0]


def parse_document(
    data: bytes,
    filename: str = "",
    password: str | None = None,
    *,
    ocr: TesseractOcr | None = None,
    limits: ParseLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> ParsedDocument:
    """Extract a file's text as sections; raise a ParseError subclass when that is impossible.

    ocr reads scanned PDF pages and images (None: they fail as needing OCR); limits bound the
    work one file may cause (TooLargeError past them); progress(done, total) follows the pages.
    """
    try:
        file_type, text = _sniff(data, filename)
        if file_type == "pdf":
            return _parse_pdf(data, filename, password, ocr, limits, progress)
        if file_type not in ("html", "markdown", "text"):
            return _parse_format(file_type, data, text, filename, ocr, limits, progress)
        parser = {"html": _parse_html, "markdown": _parse_markdown, "text": _parse_text}[file_type]
        return parser(text or "", filename)
    except (ParseError, MemoryError):
        raise
    except Exception as error:
        logger.exception("Unexpected failure while parsing %r", filename)
        raise CorruptDocumentError("The file could not be read: it may be damaged.") from error


def _parse_format(
    file_type: str,
    data: bytes,
    text: str | None,
    filename: str,
    ocr: TesseractOcr | None,
    limits: ParseLimits,
    progress: Progress | None,
) -> ParsedDocument:
    """Hand images, Office files, spreadsheets and e-mail to the module that reads them."""
    # Imported here: those modules build on this one's text helpers.
    from retrieval import mail, office, spreadsheets
    from retrieval.ocr import parse_image

    if file_type == "image":
        return parse_image(data, filename, ocr, limits, progress)
    if file_type == "csv":
        return spreadsheets.parse_csv(text or "", filename, limits)
    if file_type == "eml":
        return mail.parse_email(data, filename)
    if file_type == "xlsx":
        return spreadsheets.parse_xlsx(data, filename, limits)
    return office.parse_office(file_type, data, filename, limits)


# Type detection and decoding


def _sniff(data: bytes, filename: str) -> tuple[str, str | None]:
    """Detect the file type; for text-like files also return the decoded text."""
    if not data:
        raise EmptyDocumentError("The file is empty.")
    if _PDF_MAGIC.search(data[:1024]):
        return "pdf", None
    if data.startswith(b"PK\x03\x04"):
        return _zip_type(data, filename), None
    if data.startswith(_IMAGE_MAGIC):
        return "image", None
    if data.startswith(_OLE_MAGIC) and _OLE_ENCRYPTED in data:
        raise PasswordRequiredError(_OFFICE_PASSWORD)
    kind = next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)
    if kind is None and b"\x00" in data[:8192] and not _unicode_codec(data):
        kind = "binary data"
    text = "" if kind else _decode_text(data)
    controls = sum(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text[:8192])
    if kind or controls > 0.1 * len(text[:8192]):
        kind = kind or "binary data"
        raise UnsupportedTypeError(f"The file looks like {kind}, not a document we can read.")
    return _record_kind(text, filename) or _text_kind(text, filename), text


def _zip_type(data: bytes, filename: str) -> str:
    """Return "docx", "pptx" or "xlsx" for an Office file; reject any other zip archive."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        logger.warning("Unreadable zip archive %r: %s", filename, error)
        if b"word/document.xml" in data or filename.lower().endswith(".docx"):
            raise CorruptDocumentError(_DOCX_DAMAGED) from error
        if any(part.encode() in data for part in _OFFICE_PARTS) or filename.lower().endswith(
            (".pptx", ".xlsx")
        ):
            message = "The Office file is damaged and could not be read."
            raise CorruptDocumentError(message) from error
        raise UnsupportedTypeError("The file is a damaged zip archive, not a document.") from error
    kind = next((kind for part, kind in _OFFICE_PARTS.items() if part in names), None)
    if kind is None:
        raise UnsupportedTypeError(
            "The file is a zip archive, not a Word, PowerPoint or Excel document."
        )
    return kind


def _record_kind(text: str, filename: str) -> str | None:
    """Return "eml" for an e-mail message, "csv" for a table of delimited values, else None."""
    # Imported here: those modules build on this one's text helpers.
    from retrieval.mail import looks_like_email
    from retrieval.spreadsheets import looks_like_csv

    if looks_like_email(text):
        return "eml"
    return "csv" if looks_like_csv(text, filename) else None


def _unicode_codec(data: bytes) -> str | None:
    """Return the codec a byte order mark, or the NUL-byte pattern of UTF-16, reveals."""
    codec = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    sample = data[:4096]
    even, odd, half = sample[0::2].count(0), sample[1::2].count(0), max(len(sample) // 2, 1)
    if codec is None and odd > 0.3 * half and even < 0.02 * half:
        codec = "utf-16-le"
    if codec is None and even > 0.3 * half and odd < 0.02 * half:
        codec = "utf-16-be"
    return codec


def _decode_text(data: bytes) -> str:
    """Decode text: BOM or UTF-16 pattern first, then UTF-8, then charset-normalizer's guess."""
    codec = _unicode_codec(data)
    if codec is None:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            codec = _guessed_codec(data)
    try:
        return data.decode(codec or "unknown")
    except (UnicodeDecodeError, LookupError) as error:
        raise UnsupportedTypeError("The file's text encoding could not be recognised.") from error


def _guessed_codec(data: bytes) -> str | None:
    """Ask charset-normalizer for the encoding, preferring cp1252 among equally clean candidates."""
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    calmest = [match for match in matches if match.chaos <= best.chaos]
    if any("cp1252" in match.could_be_from_charset for match in calmest):
        try:
            data.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            pass
    return best.encoding


def _text_kind(text: str, filename: str) -> str:
    """Tell HTML, Markdown and plain text apart."""
    head, sample = text[:4096].lstrip(), text[:65536]
    suffix = PureWindowsPath(filename).suffix.lower()
    if _HTML_START.match(head):
        return "html"
    if suffix in (".md", ".markdown"):
        return "markdown"
    tags = len(_HTML_CLOSING_TAG.findall(sample))
    if tags >= 5 or re.search(r"<body[\s>]", head, re.I) or (tags and suffix in (".html", ".htm")):
        return "html"
    headings = len(_MARKDOWN_HEADING.findall(sample))
    if headings >= 2 or (headings and _MARKDOWN_FEATURE.search(sample)):
        return "markdown"
    return "text"


# Clean-up, titles and sections


def _clean_text(text: str, keep_indent: bool = False) -> str:
    """Normalise Unicode (NFKC, except the full-width punctuation Chinese text is written
    with), drop control characters, collapse runs of spaces and blanks."""
    text = _normalised(_INVISIBLE.sub("", _LINE_BREAKS.sub("\n", text)))
    lines = []
    for line in text.split("\n"):
        words = " ".join(line.split())
        indent = line[: len(line) - len(line.lstrip(" \t"))] if keep_indent and words else ""
        lines.append(indent + words)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


# Chinese punctuation that NFKC would turn into ASCII (，！？：；（）); readers expect it kept.
# Search and answers fold it themselves (retrieval.text.fold).
_OUTSIDE_CHINESE_PUNCTUATION = re.compile("[^\uff0c\uff01\uff1f\uff1a\uff1b\uff08\uff09]+")


def _normalised(text: str) -> str:
    return _OUTSIDE_CHINESE_PUNCTUATION.sub(
        lambda m: unicodedata.normalize("NFKC", m.group()), text
    )


def _title(filename: str, *candidates: object) -> str:
    """Pick the first sensible candidate (not a file name or placeholder), else the file's stem."""
    for candidate in candidates:
        title = " ".join(_clean_text(str(candidate or "")).split())
        placeholder = _FILENAME_LIKE.search(title) or title.lower() in {"untitled", "document"}
        shortest = 2 if any(_script(char) == "CJK" for char in title) else 3  # 假期, 請假
        if shortest <= len(title) <= 200 and any(c.isalpha() for c in title) and not placeholder:
            return title
    return PureWindowsPath(filename).stem or "Untitled document"


class _SectionBuilder:
    """Collects text into sections, starting a new section at each heading."""

    def __init__(self, keep_indent: bool = False) -> None:
        self.sections: list[Section] = []
        self.first_heading: str | None = None
        self._headings: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._keep_indent = keep_indent

    def write(self, text: str) -> None:
        """Append text to the current line."""
        self._parts.append(text)

    def newline(self) -> None:
        """End the current line, unless it is already ended."""
        if self._parts and not self._parts[-1].endswith("\n"):
            self._parts.append("\n")

    def add_line(self, text: str) -> None:
        """Append text as a line of its own."""
        self.newline()
        self._parts += [text, "\n"]

    def heading(self, level: int, text: str) -> None:
        """Close the current section and open one under a heading of this level (1 is outermost)."""
        text = " ".join(_clean_text(text).split())
        if text:
            self.flush()
            self._headings = [(kept, name) for kept, name in self._headings if kept < level]
            self._headings.append((level, text))
            self.first_heading = self.first_heading or text
            self.add_line(text)

    def flush(self) -> None:
        """Turn the text collected so far into a section, if it holds any."""
        text = _clean_text("".join(self._parts), self._keep_indent)
        self._parts = []
        if text.strip():
            self.sections.append(Section(text, None, tuple(name for _, name in self._headings)))

    def document(self, file_type: str, filename: str, *titles: object) -> ParsedDocument:
        """Finish: return the parsed document, or raise EmptyDocumentError when it holds no text."""
        self.flush()
        if not self.sections:
            raise EmptyDocumentError("The document holds no text.")
        title = _title(filename, *titles, self.first_heading)
        return ParsedDocument(file_type, title, self.sections)


# Mojibake detection


@lru_cache(maxsize=8192)
def _script(char: str) -> str | None:
    """Name a letter's script: "?" for unassigned or private-use code points, None if no letter."""
    category = unicodedata.category(char)
    if category in ("Cn", "Co", "Cs") or char == "\ufffd":
        return "?"
    if category[0] not in "LM":
        return None
    word = "LATIN" if char < "\x80" else unicodedata.name(char, "?").split(" ", 1)[0]
    if word in ("COMBINING", "MODIFIER", "VARIATION"):
        return None
    return "CJK" if _CJK_SCRIPT.fullmatch(word) else word


def _looks_garbled(text: str) -> bool:
    """Tell whether text is mojibake from fonts without a Unicode mapping.

    Real text changes script between words, rarely inside one, and then mixes two scripts at most
    (Latin in Japanese, Greek in formulas). Mojibake hops between several unrelated scripts from
    letter to letter, or consists mostly of unassigned and private-use code points.
    """
    odd = letters = pairs = switches = 0
    mixed: set[str] = set()
    for word in text.split():
        previous = None
        for script in map(_script, word):
            odd += script == "?"
            if script and script != "?":
                letters += 1
                pairs += previous is not None
                if previous and script != previous:
                    switches += 1
                    mixed.update((previous, script))
                previous = script
    if odd + letters >= 20 and odd > 0.3 * (odd + letters):
        return True
    return pairs >= 20 and switches > 0.25 * pairs and len(mixed) >= 3


# PDF


def _parse_pdf(
    data: bytes,
    filename: str,
    password: str | None,
    ocr: TesseractOcr | None = None,
    limits: ParseLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> ParsedDocument:
    """Open a PDF with pypdf (encryption, page tree, metadata) and read each page's text with
    pdfium, which is about 15 times faster here and reads CJK fonts that pypdf garbles; pypdf's
    own text is the fallback for pages pdfium gets empty or garbled, and pdfium alone recovers
    files pypdf cannot open. Pages still without usable text are rendered and read with OCR."""
    reader, used_password = _open_pypdf(data, password)
    pdfium = _PdfiumText(data, used_password if reader else password)
    scanned = _scanned_page_readers(pdfium, ocr, limits)
    try:
        if reader is not None:
            page_count = len(reader.pages)
            readers: list[PageReader] = [pdfium.page_text, _pypdf_page_reader(reader), *scanned]
            title, warnings = _title(filename, _pypdf_title(reader)), []
        else:
            page_count = pdfium.page_count()
            readers = [pdfium.page_text, *scanned]
            title = _title(filename)
            warnings = ["The PDF is damaged; its text was recovered but may be incomplete."]
        pages = _collect_pages(page_count, readers, progress)
        _note_ocr(scanned, pages[0], warnings, page_count)
        return _pdf_document(title, page_count, *pages, warnings)
    finally:
        pdfium.close()


def _scanned_page_readers(
    pdfium: _PdfiumText, ocr: TesseractOcr | None, limits: ParseLimits
) -> list[ScannedPageReader]:
    """The OCR reader of pages without a usable text layer: one, or none when OCR is off."""
    from retrieval.ocr import ScannedPageReader  # it builds on this module's text helpers

    return [ScannedPageReader(pdfium.page_image, ocr, limits)] if ocr else []


def _note_ocr(
    scanned: list[ScannedPageReader], sections: list[Section], warnings: list[str], pages: int
) -> None:
    """Say which pages were read with OCR; fail a wholly scanned PDF when OCR is missing."""
    for reader in scanned:
        if reader.missing is not None and not sections:
            raise reader.missing
        if reader.missing is not None:
            warnings.append(f"Pages without a text layer were skipped: {reader.missing}")
        found = {section.page for section in sections}
        read = [number for number in reader.pages_with_text if number in found]
        if read:
            listed = ", ".join(map(str, read[:10])) + (", ..." if len(read) > 10 else "")
            warnings.append(
                f"{len(read)} of {pages} page(s) were read with OCR (pages {listed}); "
                "their text may hold recognition errors"
            )


def _open_pypdf(data: bytes, password: str | None) -> tuple[PdfReader | None, str | None]:
    """Open and unlock a PDF with pypdf; return (None, None) when pypdf cannot read it."""
    try:
        reader = PdfReader(BytesIO(data), strict=False)
        used_password = _unlock(reader, password) if reader.is_encrypted else None
        len(reader.pages)  # reads the page tree, where damaged files usually fail
        return reader, used_password
    except ParseError:
        raise
    except DependencyError as error:
        raise _missing_dependency(error) from error
    except Exception as error:
        logger.warning("pypdf could not open the PDF (%s: %s)", type(error).__name__, error)
        return None, None


def _unlock(reader: PdfReader, password: str | None) -> str | None:
    """Decrypt with the empty user password (owner-only files), else with the password given."""
    if reader.decrypt("") != PasswordType.NOT_DECRYPTED:
        return None
    if not password:
        raise PasswordRequiredError(_PDF_PASSWORD_REQUIRED)
    if reader.decrypt(password) == PasswordType.NOT_DECRYPTED:
        raise WrongPasswordError(_PDF_WRONG_PASSWORD)
    return password


def _missing_dependency(error: Exception) -> MissingDependencyError:
    """Build the error for an encryption library that pypdf needs and cannot find."""
    logger.error("pypdf is missing a dependency: %s", error)
    return MissingDependencyError(
        "This PDF uses AES encryption, which needs the 'cryptography' "
        "package; install it to ingest the file."
    )


def _pypdf_title(reader: PdfReader) -> str | None:
    """Return the title in the PDF's metadata, if it can be read."""
    try:
        return reader.metadata.title if reader.metadata else None
    except Exception as error:
        logger.warning("Unreadable PDF metadata (%s: %s)", type(error).__name__, error)
        return None


def _pypdf_page_reader(reader: PdfReader) -> PageReader:
    """Return a function giving the clean text of a page, or None when pypdf fails on it."""

    def read(number: int) -> str | None:
        try:
            return _clean_text(reader.pages[number - 1].extract_text() or "")
        except DependencyError as error:
            raise _missing_dependency(error) from error
        except Exception as error:
            logger.warning("pypdf failed on page %d (%s: %s)", number, type(error).__name__, error)
            return None

    return read


class _PdfiumText:
    """Page text from pdfium; the document is opened when first needed."""

    def __init__(self, data: bytes, password: str | None) -> None:
        self._data, self._password = data, password
        self._document: pypdfium2.PdfDocument | None = None
        self._error: Exception | None = None

    def page_count(self) -> int:
        """Count the pages; raise the matching ParseError when pdfium cannot open the file."""
        document = self._open()
        if document is not None and len(document):
            return len(document)
        if getattr(self._error, "err_code", None) == pypdfium2.raw.FPDF_ERR_PASSWORD:
            raise (
                WrongPasswordError(_PDF_WRONG_PASSWORD)
                if self._password
                else PasswordRequiredError(_PDF_PASSWORD_REQUIRED)
            )
        raise CorruptDocumentError(_PDF_UNREADABLE)

    def page_text(self, number: int) -> str | None:
        """Return the clean text of a page, "" when it has none, None when pdfium fails on it."""
        document = self._open()
        try:
            text_page = document[number - 1].get_textpage() if document else None
            return _clean_text(text_page.get_text_range()) if text_page else None
        except Exception as error:
            logger.warning("pdfium failed on page %d (%s: %s)", number, type(error).__name__, error)
            return None

    def page_image(self, number: int, dpi: int, max_pixels: int) -> Image.Image | None:
        """Render a page in grey at dpi, less where that would pass max_pixels; None on failure."""
        document = self._open()
        try:
            page = document[number - 1] if document else None
            if page is None:
                return None
            width, height = page.get_size()
            scale = min(dpi / 72, math.sqrt(max_pixels / max(width * height, 1.0)))
            return page.render(scale=scale, grayscale=True).to_pil()
        except Exception as error:
            logger.warning("pdfium could not render page %d (%s)", number, type(error).__name__)
            return None

    def close(self) -> None:
        """Release pdfium's memory."""
        if self._document is not None:
            self._document.close()

    def _open(self) -> pypdfium2.PdfDocument | None:
        if self._document is None and self._error is None:
            try:
                self._document = pypdfium2.PdfDocument(self._data, password=self._password)
            except Exception as error:
                logger.warning(
                    "pdfium could not open the PDF (%s: %s)", type(error).__name__, error
                )
                self._error = error
        return self._document


def _collect_pages(
    page_count: int, readers: list[PageReader], progress: Progress | None = None
) -> tuple[list[Section], list[int], list[int]]:
    """Read each page with the first reader giving clean text; list empty and garbled pages."""
    sections: list[Section] = []
    empty: list[int] = []
    garbled: list[int] = []
    for number in range(1, page_count + 1):
        texts = []
        for read in readers:
            texts.append(read(number))
            if texts[-1] and not _looks_garbled(texts[-1]):
                sections.append(Section(texts[-1], number))
                break
        else:
            if all(text is None for text in texts):
                raise CorruptDocumentError(f"Page {number} of the PDF is damaged and unreadable.")
            (garbled if any(texts) else empty).append(number)
        if progress:
            progress(number, page_count)
    return sections, empty, garbled


def _pdf_document(
    title: str,
    page_count: int,
    sections: list[Section],
    empty: list[int],
    garbled: list[int],
    warnings: list[str],
) -> ParsedDocument:
    """Assemble the parsed PDF, or raise when no page gave usable text."""
    if not page_count:
        raise EmptyDocumentError("The PDF has no pages.")
    if not sections and garbled:
        raise NoTextLayerError(
            "The PDF's text cannot be decoded (its fonts have no Unicode mapping): it needs OCR."
        )
    if not sections:
        raise NoTextLayerError(
            "No page has a text layer: this looks like a scanned document and needs OCR."
        )
    for pages, problem in ((empty, "no text layer"), (garbled, "undecodable text and was skipped")):
        listed = ", ".join(map(str, pages[:10])) + (", ..." if len(pages) > 10 else "")
        if len(pages) == 1:
            warnings.append(f"1 of {page_count} pages has {problem} (page {listed})")
        elif pages:
            warnings.append(f"{len(pages)} of {page_count} pages have {problem} (pages {listed})")
    return ParsedDocument("pdf", title, sections, page_count, warnings)


# HTML, Markdown, plain text (Word and PowerPoint: retrieval/office.py)


def _parse_html(text: str, filename: str) -> ParsedDocument:
    """Read visible text; h1-h6 open sections; script, style, nav and noscript are dropped;
    a table becomes one line per row, each cell labelled with its column's header; the
    description and keywords meta tags become metadata."""
    soup = BeautifulSoup(text, "html.parser")
    page_title = soup.title.get_text() if soup.title else None
    first_h1 = soup.find("h1")
    h1_text = first_h1.get_text(" ") if first_h1 else None
    metadata = {
        str(meta.get("name")).lower(): " ".join(str(meta.get("content") or "").split())
        for meta in soup.find_all("meta")
        if str(meta.get("name") or "").lower() in ("description", "keywords")
    }
    for tag in soup(["script", "style", "nav", "noscript", "template", "head"]):
        tag.decompose()
    flatten_tables(soup)
    builder = _SectionBuilder()
    for node in soup.descendants:
        name = node.name if isinstance(node, Tag) else None
        if name in _HTML_HEADINGS:
            builder.heading(_HTML_HEADINGS[name], node.get_text(" "))
        elif name and _HTML_BLOCK.fullmatch(name):
            builder.newline()
        elif type(node) is NavigableString and not node.find_parent(list(_HTML_HEADINGS)):
            builder.write(str(node).replace("\n", " "))
    document = builder.document("html", filename, page_title, h1_text)
    document.metadata = {name: content for name, content in metadata.items() if content}
    return document


def _parse_markdown(text: str, filename: str) -> ParsedDocument:
    """Split at ATX (#) and setext headings, leaving '#' lines inside fenced code alone.

    Front matter gives the title and metadata; template tags, HTML, attribute lists, admonition
    syntax, images, link targets and fence lines leave the text (retrieval.markup).
    """
    front_matter, text = split_front_matter(text)
    builder = _SectionBuilder(keep_indent=True)
    lines = clean_markdown(text, site_source=front_matter is not None).splitlines() or [""]
    fence: str | None = None
    skip_next = False
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        fence_mark = (FENCE.match(line) or [None, None])[1]
        if skip_next:
            skip_next = False
        elif fence or fence_mark:
            fence, was_open = fence_after(fence, fence_mark), fence
            if fence and was_open:  # the fence lines themselves are markup
                builder.add_line(line)
        elif heading := _ATX_HEADING.match(line):
            builder.heading(len(heading.group(1)), heading.group(2) or "")
        elif line.strip() and (underline := _SETEXT_UNDERLINE.match(following)):
            builder.heading(1 if underline.group(1)[0] == "=" else 2, line)
            skip_next = True
        else:
            builder.add_line(line)
    if front_matter is None:
        return builder.document("markdown", filename)
    document = builder.document("markdown", filename, front_matter.title)
    document.metadata = {key: _clean_text(value) for key, value in front_matter.metadata.items()}
    document.warnings += [front_matter.warning] if front_matter.warning else []
    return document


def _parse_text(text: str, filename: str) -> ParsedDocument:
    """Return plain text as one section."""
    cleaned = _clean_text(text, keep_indent=True)
    if not cleaned.strip():
        raise EmptyDocumentError("The file holds no text.")
    return ParsedDocument("text", _title(filename), [Section(cleaned)])
