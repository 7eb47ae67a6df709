"""Optical character recognition with Tesseract, and images (PNG, JPEG, TIFF) as documents.

TesseractOcr reads one image; parse_image() turns an image file into a document with one page
per frame (a multi-page TIFF is a scanned document). The pixel and page limits are checked from
the file's header, before any pixel is decoded, so a 20,000 x 20,000 image or a 1,000-page TIFF
is refused in milliseconds.
"""

from __future__ import annotations

import logging
import re
import shutil
import warnings
from collections.abc import Callable
from io import BytesIO

import pytesseract
from PIL import Image, ImageOps, UnidentifiedImageError

from retrieval.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    MissingDependencyError,
    TooLargeError,
)
from retrieval.limits import ParseLimits
from retrieval.parsing import Progress, _clean_text, _title
from retrieval.types import ParsedDocument, Section

logger = logging.getLogger(__name__)

IMAGE_FORMATS = {"PNG", "JPEG", "TIFF", "MPO"}  # MPO: a JPEG from a camera, with previews
# Tesseract separates every CJK character it reads with a space; real text has none there.
_CJK = r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]"
_SPACE_IN_CJK = re.compile(rf"(?<={_CJK}) +(?={_CJK})")
# Tesseract models of East Asian scripts, and the scripts its detection names for them.
_CJK_MODELS = {"chi_sim", "chi_tra", "chi_sim_vert", "chi_tra_vert", "jpn", "jpn_vert", "kor"}
_CJK_SCRIPTS = {"Han", "Japanese", "Hangul", "Katakana", "Hiragana"}
_SURE_ORIENTATION = 5.0  # below this, Tesseract's guess of a page's rotation is noise


class TesseractOcr:
    """Tesseract through pytesseract: languages like "eng+chi_sim+chi_tra", images at dpi.

    dpi is the resolution PDF pages are rendered at (Tesseract reads best at about 300).
    timeout is the most seconds one page may take; command is the tesseract program (a name on
    PATH or a path). read() raises MissingDependencyError when the program or a language's
    data is not installed.

    Example: TesseractOcr("eng").read(Image.open("scan.png"))
    """

    def __init__(
        self,
        languages: str = "eng+chi_sim+chi_tra",
        dpi: int = 300,
        timeout: float = 300.0,
        command: str = "tesseract",
    ) -> None:
        self.languages, self.dpi, self.timeout, self.command = languages, dpi, timeout, command
        self._checked = False

    def read(self, image: Image.Image, page: int = 1) -> str:
        """Return the text Tesseract reads in an image ("" when none); page names it in errors."""
        self.ensure_installed(page)
        pytesseract.pytesseract.tesseract_cmd = self.command
        try:
            image, languages = self._upright(image)
            text = pytesseract.image_to_string(
                image, lang=languages, timeout=self.timeout, config="--psm 3"
            )
        except RuntimeError as error:  # pytesseract's timeout
            raise TooLargeError(f"Reading page {page} with OCR took too long.") from error
        except pytesseract.TesseractError as error:
            logger.warning("Tesseract failed on page %d: %s", page, error)
            raise CorruptDocumentError(f"Page {page} could not be read with OCR.") from error
        return _SPACE_IN_CJK.sub("", text)

    def _upright(self, image: Image.Image) -> tuple[Image.Image, str]:
        """Turn the page upright and choose the languages for its script, as Tesseract's
        orientation and script detection says. Reading Chinese with English beside it, or
        English with Chinese, costs accuracy (a Chinese page: 22% character errors with
        eng+chi_sim+chi_tra, 7% with chi_sim+chi_tra) and time (three models instead of one);
        a page with too little text to tell keeps every language."""
        chinese = "+".join(name for name in self.languages.split("+") if name in _CJK_MODELS)
        others = "+".join(name for name in self.languages.split("+") if name not in _CJK_MODELS)
        try:
            found = pytesseract.image_to_osd(
                image, output_type=pytesseract.Output.DICT, timeout=self.timeout
            )
        except pytesseract.TesseractError:
            return image, self.languages
        if found.get("orientation_conf", 0) >= _SURE_ORIENTATION and found.get("rotate"):
            image = image.rotate(-int(found["rotate"]), expand=True, fillcolor=255)
        if found.get("script_conf", 0) <= 0 or not (chinese and others):
            return image, self.languages
        return image, chinese if found.get("script") in _CJK_SCRIPTS else others

    def ensure_installed(self, page: int = 1) -> None:
        """Raise MissingDependencyError unless tesseract and every language asked for are there."""
        if self._checked:
            return
        if shutil.which(self.command) is None:
            raise MissingDependencyError(
                f"Scanned page {page} needs OCR: install tesseract-ocr "
                "(apt-get install tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-chi-tra)."
            )
        pytesseract.pytesseract.tesseract_cmd = self.command
        missing = set(self.languages.split("+")) - set(pytesseract.get_languages())
        if missing:
            packages = " ".join(f"tesseract-ocr-{name.replace('_', '-')}" for name in missing)
            raise MissingDependencyError(
                f"Scanned page {page} needs OCR in {', '.join(sorted(missing))}: "
                f"install {packages}."
            )
        self._checked = True


def parse_image(
    data: bytes,
    filename: str,
    ocr: TesseractOcr | None,
    limits: ParseLimits,
    progress: Progress | None = None,
) -> ParsedDocument:
    """OCR each frame of an image file as one page; raise TooLargeError past the limits and
    MissingDependencyError when OCR is off or not installed."""
    image = open_image(data, limits)
    pages = getattr(image, "n_frames", 1)
    if pages > limits.image_pages:
        raise TooLargeError(
            f"The image has {pages:,} pages, over the limit of {limits.image_pages:,}."
        )
    if ocr is None:
        raise MissingDependencyError("The image needs OCR, which is turned off on this server.")
    sections = []
    for number in range(1, pages + 1):
        image.seek(number - 1)
        check_pixels(image.size, limits)
        text = _clean_text(ocr.read(_greyscale(image), number))
        if text.strip():
            sections.append(Section(text, number))
        if progress:
            progress(number, pages)
    if not sections:
        raise EmptyDocumentError("No text was found in the image.")
    found = {section.page for section in sections}
    blank = [str(number) for number in range(1, pages + 1) if number not in found]
    notes = [f"No text was found on page(s) {', '.join(blank[:10])}."] if blank else []
    return ParsedDocument("image", _title(filename), sections, pages, notes)


def open_image(data: bytes, limits: ParseLimits) -> Image.Image:
    """Open an image lazily (header only), refusing unknown formats and oversized pictures."""
    try:
        with warnings.catch_warnings():
            # check_pixels() applies our own limit; Pillow's own error above twice its
            # default limit is still caught below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data))
    except Image.DecompressionBombError as error:
        raise TooLargeError(
            "The image is too large: " + _too_many_pixels_message(limits)
        ) from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise CorruptDocumentError("The image is damaged and could not be read.") from error
    if image.format not in IMAGE_FORMATS:
        raise CorruptDocumentError("The image format is not one we read (PNG, JPEG or TIFF).")
    check_pixels(image.size, limits)
    return image


def check_pixels(size: tuple[int, int], limits: ParseLimits) -> None:
    """Raise TooLargeError for an image of more pixels than the limit."""
    width, height = size
    if width * height > limits.image_pixels:
        raise TooLargeError(
            f"The image is {width:,} x {height:,} pixels; " + _too_many_pixels_message(limits)
        )


def _too_many_pixels_message(limits: ParseLimits) -> str:
    return f"images of more than {limits.image_pixels:,} pixels are not read."


def _greyscale(image: Image.Image) -> Image.Image:
    """Decode the current frame as 8-bit grey, upright as its EXIF orientation says."""
    try:
        return ImageOps.exif_transpose(image).convert("L")
    except (OSError, ValueError, SyntaxError) as error:
        raise CorruptDocumentError("The image is damaged and could not be read.") from error


class ScannedPageReader:
    """Reads PDF pages that have no usable text layer with OCR, one page at a time.

    render(number, dpi, max_pixels) gives the page as an image (None when it cannot be drawn).
    When OCR is not installed, pages read as empty and `missing` keeps the error, so that a
    document with text on other pages is still indexed (with a warning) and a wholly scanned
    one fails with the message that says what to install.
    """

    def __init__(
        self,
        render: Callable[[int, int, int], Image.Image | None],
        ocr: TesseractOcr,
        limits: ParseLimits,
    ) -> None:
        self._render, self._ocr, self._limits = render, ocr, limits
        self.missing: MissingDependencyError | None = None
        self.pages_read = 0
        self.pages_with_text: list[int] = []

    def __call__(self, number: int) -> str | None:
        if self.missing is not None:
            return ""
        self.pages_read += 1
        if self.pages_read > self._limits.image_pages:
            raise TooLargeError(
                f"The PDF has more than {self._limits.image_pages:,} scanned pages to read "
                "with OCR; split it into smaller files."
            )
        try:
            self._ocr.ensure_installed(number)
        except MissingDependencyError as error:
            self.missing = error
            return ""
        image = self._render(number, self._ocr.dpi, self._limits.image_pixels)
        if image is None:
            return None
        text = _clean_text(self._ocr.read(image, number))
        if text:
            self.pages_with_text.append(number)
        return text
