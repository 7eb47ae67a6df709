"""Why a document failed, in the reader's language.

A document's error is stored as the parser (retrieval/, which knows nothing of Django) or the
ingestion wrote it, in English. The fixed sentences among them are listed here for translation;
pages and the status JSON show `translated_error(document.error)` (templates: `{% translate
document.error %}`), which finds the translation of such a sentence. Errors with numbers or names
in them are shown as stored. tests/knowledge/test_i18n.py checks that each sentence listed here
is still written somewhere in retrieval/ or knowledge/.
"""

from __future__ import annotations

from django.utils.translation import gettext, gettext_noop

FIXED_ERRORS = [
    # retrieval/parsing.py
    gettext_noop("The file is empty."),
    gettext_noop("The file holds no text."),
    gettext_noop("The document holds no text."),
    gettext_noop("The file could not be read: it may be damaged."),
    gettext_noop("The file's text encoding could not be recognised."),
    gettext_noop("The file is a damaged zip archive, not a document."),
    gettext_noop("The file is a zip archive, not a Word, PowerPoint or Excel document."),
    gettext_noop("The PDF has no pages."),
    gettext_noop("The PDF is truncated or damaged and could not be read."),
    gettext_noop("This PDF is password-protected; give its password to ingest it."),
    gettext_noop("The password given does not open this PDF."),
    gettext_noop(
        "This PDF uses AES encryption, which needs the 'cryptography' package; install it to "
        "ingest the file."
    ),
    gettext_noop("No page has a text layer: this looks like a scanned document and needs OCR."),
    gettext_noop(
        "The PDF's text cannot be decoded (its fonts have no Unicode mapping): it needs OCR."
    ),
    gettext_noop("The Word document is damaged and could not be read."),
    gettext_noop("The Office file is damaged and could not be read."),
    gettext_noop(
        "This Office file is password-protected; save it again without a password and upload that."
    ),
    # retrieval/office.py, spreadsheets.py, mail.py, ocr.py
    gettext_noop("The presentation holds no text."),
    gettext_noop("The CSV file holds no values."),
    gettext_noop("The workbook holds no values."),
    gettext_noop("The Excel workbook is damaged and could not be read."),
    gettext_noop("The message has no text."),
    gettext_noop("No text was found in the image."),
    gettext_noop("The image is damaged and could not be read."),
    gettext_noop("The image format is not one we read (PNG, JPEG or TIFF)."),
    gettext_noop("The image needs OCR, which is turned off on this server."),
    # knowledge/ingestion.py
    gettext_noop("The stored file is missing or unreadable; upload it again."),
    gettext_noop("The document holds no text to index."),
]


def translated_error(error: str) -> str:
    """The error in the active language when it is one of FIXED_ERRORS, else as stored."""
    return gettext(error) if error else ""
