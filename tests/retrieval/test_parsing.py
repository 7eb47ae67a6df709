"""Tests for retrieval.parsing: every manifest PDF reaches its outcome, other formats parse."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import docx
import pypdf
import pypdfium2
import pytest

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
from retrieval.ocr import TesseractOcr
from retrieval.parsing import _looks_garbled, detect_file_type, parse_document

REPO_ROOT = Path(__file__).resolve().parents[2]
PDFS = REPO_ROOT.parent / "shared" / "data" / "pdfs"


@pytest.fixture(autouse=True)
def data_dir():
    """Parsing needs no Django: this replaces the suite-wide fixture that sets Django settings."""


@dataclass(frozen=True)
class Outcome:
    """What parse_document must do with one manifest file: give text or raise a given error."""

    pages: int | None = None  # page_count
    text_pages: int | None = None  # pages with text (one section each); defaults to pages
    snippets: tuple[tuple[int, str], ...] = ()  # (page, text that page must contain)
    title: str | None = None
    warning: str | None = None  # text one of the warnings must contain
    error: type[ParseError] | None = None


MANIFEST = [
    (
        "175.pdf",
        None,
        Outcome(
            pages=2,
            snippets=((1, "Oversize Tire Accessory Kit"), (2, "Main Gear")),
            warning="read with OCR",
        ),
    ),
    ("aes-256.pdf", None, Outcome(error=PasswordRequiredError)),
    ("aes-256.pdf", "foo", Outcome(pages=1, snippets=((1, "Secret!"),))),
    ("aes-256.pdf", "bar", Outcome(error=WrongPasswordError)),
    ("ca-warn-report.pdf", None, Outcome(pages=16, snippets=((16, "Total 632 53,454"),))),
    (
        "chelsea_pdta.pdf",
        None,
        Outcome(
            pages=65,
            text_pages=64,
            warning="1 of 65 pages has no text layer (page 4)",
            snippets=((1, "municipalité de Chelsea"), (65, "Lieu d’emploi ou d’études")),
            title="Plan stratégique du sentier récréatif régional de Prescott et Russell",
        ),
    ),
    (
        "dmca.pdf",
        None,
        Outcome(
            pages=18,
            snippets=((1, "DIGITAL MILLENNIUM COPYRIGHT ACT"), (10, "Page 10")),
            title="The Digital Millennium Copyright Act of 1998",
        ),
    ),
    ("empty.pdf", None, Outcome(error=EmptyDocumentError)),
    ("f1040nr.pdf", None, Outcome(pages=5, snippets=((1, "Nonresident Alien"), (3, "Schedule A")))),
    (
        "federal-register-2020-17221.pdf",
        None,
        Outcome(
            pages=15,
            snippets=((1, "FEDERAL REGISTER"), (15, "47712 Federal Register")),
        ),
    ),
    (
        "GeoTopo-komprimiert.pdf",
        None,
        Outcome(
            pages=117,
            title="Geometrie und Topologie",
            snippets=((1, "0. Auflage"), (2, "Kugeloberfläche"), (117, "Stichwortverzeichnis")),
        ),
    ),
    (
        "issue-67-example.pdf",
        None,
        Outcome(
            pages=22,
            snippets=((1, "东北电气发展股份有限公司"), (22, "投资活动现金流出小计")),
        ),
    ),
    ("issue-848-truncated-at-50pct.pdf", None, Outcome(error=CorruptDocumentError)),
    (
        "jo.pdf",
        None,
        Outcome(pages=1, snippets=((1, "宇宙塵をたべ、または空気や塩水を呼吸しながら"),)),
    ),
    ("libreoffice-form.pdf", None, Outcome(pages=1, snippets=((1, "Example for a Form"),))),
    ("libreoffice-writer-password.pdf", None, Outcome(error=PasswordRequiredError)),
    (
        "libreoffice-writer-password.pdf",
        "openpassword",
        Outcome(
            pages=1,
            snippets=((1, "Lorem ipsum dolor sit amet"),),
        ),
    ),
    ("multicolumn.pdf", None, Outcome(pages=3, snippets=((3, "EU Countries Information"),))),
    (
        "multilang.pdf",
        None,
        Outcome(
            pages=1,
            snippets=(
                (1, "Hello World"),
                (1, "مرحبا بالعالم"),
                (1, "Привет, мир"),
                (1, "你好世界"),
                (1, "สวัสดีชาวโลก"),
                (1, "こんにちは世界"),
            ),
        ),
    ),
    (
        "naacl06-shinyama.pdf",
        None,
        Outcome(
            pages=8,
            snippets=((1, "Preemptive Information Extraction"),),
        ),
    ),
    ("nics-background-checks-2015-11.pdf", None, Outcome(pages=1, snippets=((1, "Handgun"),))),
    ("pdf-with-jbig2.pdf", None, Outcome(pages=1, snippets=((1, "Doesn't"),), warning="OCR")),
    ("r4-aes-user-password.pdf", None, Outcome(error=PasswordRequiredError)),
    (
        "r4-aes-user-password.pdf",
        "asdfzxcv",
        Outcome(
            pages=1,
            snippets=((1, "pdf encryption test"),),
        ),
    ),
    ("r6-owner-password.pdf", None, Outcome(pages=1, snippets=((1, "pdf encryption test"),))),
    (
        "Seige_of_Vicksburg_Sample_OCR.pdf",
        None,
        Outcome(
            pages=6,
            snippets=((1, "THE SIEGE OF VICKSBURG"), (6, "watched the beauty above")),
            title="Seige_of_Vicksburg_Sample_OCR",  # the metadata title is "Binder1.pdf"
        ),
    ),
    ("senate-expenditures.pdf", None, Outcome(pages=1, snippets=((1, "PAYEE NAME"),))),
    (
        "simple1.pdf",
        None,
        Outcome(
            pages=1,
            snippets=((1, "Hello World"),),
            warning="damaged",
        ),
    ),
    ("unreadablemetadata.pdf", None, Outcome(error=CorruptDocumentError)),
    (
        "zen_of_python_corrupted.pdf",
        None,
        Outcome(
            pages=1,
            snippets=((1, "Beautiful is better than ugly."),),
            title="zen_of_python_corrupted",  # the metadata title is "zen_of_python.txt"
        ),
    ),
]


# Scanned without a text layer: read with OCR (Tesseract, at 200 dpi to save time).
SCANNED = {"175.pdf", "pdf-with-jbig2.pdf"}
OCR = TesseractOcr(dpi=200)


def pdf_bytes(name: str) -> bytes:
    path = PDFS / name
    assert path.is_file(), f"missing test file {path} (the shared data folder sits beside the repo)"
    return path.read_bytes()


def assert_clean(text: str) -> None:
    """Extracted text holds no ligatures, control characters or pdfium markers."""
    assert not any("\ufb00" <= char <= "\ufb06" for char in text)
    assert not any(char < " " and char != "\n" for char in text)
    assert "\ufffe" not in text and "\u00ad" not in text


@pytest.mark.parametrize(
    ("name", "password", "outcome"),
    [
        pytest.param(
            *row,
            id=f"{row[0]}-{row[1] or 'no password'}",
            marks=[pytest.mark.slow] if row[0] in SCANNED else [],
        )
        for row in MANIFEST
    ],
)
def test_it_reaches_the_manifest_outcome_for_each_pdf(name, password, outcome, request):
    if name in SCANNED:
        request.getfixturevalue("tesseract")
    if outcome.error is not None:
        with pytest.raises(outcome.error) as raised:
            parse_document(pdf_bytes(name), name, password, ocr=OCR)
        assert type(raised.value) is outcome.error and str(raised.value)
        return
    document = parse_document(pdf_bytes(name), name, password, ocr=OCR)
    assert document.file_type == "pdf"
    assert document.page_count == outcome.pages
    assert len(document.sections) == (outcome.text_pages or outcome.pages)
    pages = [section.page for section in document.sections]
    assert pages == sorted(set(pages)) and pages[0] >= 1 and pages[-1] <= document.page_count
    text_of_page = {section.page: section.text for section in document.sections}
    for page, snippet in outcome.snippets:
        assert snippet in text_of_page[page], f"{snippet!r} not on page {page}"
    for section in document.sections:
        assert section.text.strip() and section.heading_path == ()
        assert_clean(section.text)
    if outcome.title:
        assert document.title == outcome.title
    if outcome.warning:
        assert any(outcome.warning in warning for warning in document.warnings), document.warnings
    else:
        assert document.warnings == []


def test_it_has_an_expected_outcome_for_every_pdf_in_the_data_folder():
    assert {path.name for path in PDFS.glob("*.pdf")} == {row[0] for row in MANIFEST}


def test_it_reads_owner_password_only_pdfs_without_asking_for_a_password():
    for name in ("dmca.pdf", "r6-owner-password.pdf"):
        assert parse_document(pdf_bytes(name), name).sections


def test_it_reports_a_missing_aes_library_as_a_dependency_error(monkeypatch):
    def decrypt(self, password):
        raise pypdf.errors.DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf.PdfReader, "decrypt", decrypt)
    with pytest.raises(MissingDependencyError, match="cryptography"):
        parse_document(pdf_bytes("r4-aes-user-password.pdf"), password="asdfzxcv")


def test_it_reads_a_page_with_pdfium_when_pypdf_fails_on_it(monkeypatch):
    def explode(self, *args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(pypdf.PageObject, "extract_text", explode)
    document = parse_document(pdf_bytes("naacl06-shinyama.pdf"))
    assert len(document.sections) == 8
    assert "Preemptive Information Extraction" in document.sections[0].text


def test_it_reports_a_damaged_page_when_no_reader_can_read_it(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pypdf.PageObject, "extract_text", explode)
    monkeypatch.setattr(pypdfium2, "PdfDocument", explode)
    with pytest.raises(CorruptDocumentError, match="Page 1"):
        parse_document(pdf_bytes("multicolumn.pdf"))


def test_it_refuses_mojibake_when_no_reader_decodes_the_fonts(monkeypatch):
    def unavailable(*args, **kwargs):
        raise pypdfium2.PdfiumError("Failed to load document")

    monkeypatch.setattr(pypdfium2, "PdfDocument", unavailable)
    with pytest.raises(NoTextLayerError, match="cannot be decoded"):
        parse_document(pdf_bytes("jo.pdf"), "jo.pdf")


def test_the_mojibake_check_flags_pypdf_output_for_a_non_unicode_cjk_font():
    garbage = pypdf.PdfReader(io.BytesIO(pdf_bytes("jo.pdf"))).pages[0].extract_text()
    assert _looks_garbled(garbage)
    assert _looks_garbled("\ue000\ue001\ue002\ue003 \ue004\ue005\ue006 " * 5)


@pytest.mark.parametrize(
    "text",
    [
        "Größere Äpfel schmecken süßer. Für alle ε>0 gibt es δ-Umgebungen, σ-Algebren, Lp-Räume.",
        "L'élève a été très ému par la cérémonie à Noël ; où est le garçon ? Ça coûte 5 €.",
        "これはPDFのテストでPythonを使うAPIの説明です。OCRとLLMをJSONで返すHTTPサーバー。",
        "大韓民國의 憲法은 國民主權을 規定한다. 한국어 문장과 漢字가 섞여 있습니다.",
        "Мы используем Python и Django для RAG-системы; API-ключ хранится в Redis.",
        "Tiếng Việt có nhiều dấu thanh điệu như sắc, huyền, hỏi, ngã, nặng trong các từ.",
        "हिन्दी भाषा भारत की राजभाषा है और यह देवनागरी लिपि में लिखी जाती है।",
        "שָׁלוֹם עֲלֵיכֶם, זֶהוּ טֶקְסְט בְּעִבְרִית עִם נִקּוּד מָלֵא לְבְדִיקָה.",
        "English: Hello World\nArabic: مرحبا بالعالم\nThai: สวัสดีชาวโลก\nJapanese: こんにちは世界",
        "Let ℵ0 be countable; for x∈ℝ, ∑ aᵢbᵢ ≤ ‖a‖‖b‖ and ψ(x)=e^{iθ}φ(x), ΔE=ħω.",
    ],
)
def test_the_mojibake_check_accepts_real_multilingual_text(text):
    assert not _looks_garbled(text)


# Other formats


def docx_bytes() -> bytes:
    document = docx.Document()
    document.add_heading("Employee Handbook", level=0)
    document.add_paragraph("Welcome to the company.")
    document.add_heading("Leave", level=1)
    document.add_paragraph("Everyone gets 25 days of paid leave.")
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Tell your manager before 9 am.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Grade", "Days"), ("Junior", "25")], strict=True):
        for cell, value in zip(row.cells, cells, strict=True):
            cell.text = value
    document.add_heading("Expenses", level=1)
    document.add_paragraph("Keep every receipt.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_it_reads_a_word_document_with_headings_and_a_table():
    document = parse_document(docx_bytes(), "handbook.docx")
    assert document.file_type == "docx" and document.title == "Employee Handbook"
    paths = {section.heading_path: section.text for section in document.sections}
    handbook = ("Employee Handbook",)
    assert "25 days of paid leave" in paths[(*handbook, "Leave")]
    sick_leave = paths[(*handbook, "Leave", "Sick leave")]
    assert "before 9 am" in sick_leave and "Grade | Days\nJunior | 25" in sick_leave
    assert "Keep every receipt." in paths[(*handbook, "Expenses")]
    assert all(section.page is None for section in document.sections)


def test_it_reports_a_damaged_word_document():
    with pytest.raises(CorruptDocumentError):
        parse_document(docx_bytes()[:2000], "handbook.docx")


def test_it_rejects_a_zip_archive_that_is_not_a_word_document():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photos/cat.txt", "not a document")
    with pytest.raises(UnsupportedTypeError, match="zip archive"):
        parse_document(buffer.getvalue(), "holiday.docx")


HTML = """<!DOCTYPE html><html><head><title>Travel policy</title>
<style>body { color: red }</style><script>var secret = "do not index";</script></head>
<body><nav>Home | About</nav><h1>Travel</h1><p>Book trains where you can.</p>
<h2>Flights</h2><p>Economy class for flights
under six hours.</p><noscript>Enable JavaScript</noscript>
<table><tr><td>Zone</td><td>Budget</td></tr></table></body></html>"""


def test_it_splits_html_at_headings_and_drops_scripts_and_navigation():
    document = parse_document(HTML.encode(), "travel.html")
    assert document.file_type == "html" and document.title == "Travel policy"
    paths = {section.heading_path: section.text for section in document.sections}
    assert paths[("Travel",)] == "Travel\nBook trains where you can."
    assert "Economy class for flights under six hours." in paths[("Travel", "Flights")]
    assert "Zone: Budget" in paths[("Travel", "Flights")]  # a two-column row reads key: value
    text = " ".join(section.text for section in document.sections)
    for hidden in ("do not index", "color: red", "Home | About", "Enable JavaScript"):
        assert hidden not in text


MARKDOWN = """Release notes
=============

Intro text.

## Install

```bash
# this is a comment, not a heading
pip install app
```

### Upgrade #

Run the migrations.

Known issues
------------

None so far.
"""


def test_it_splits_markdown_at_headings_but_not_inside_code_fences():
    document = parse_document(MARKDOWN.encode(), "NOTES.md")
    assert document.file_type == "markdown" and document.title == "Release notes"
    paths = {section.heading_path: section.text for section in document.sections}
    assert list(paths) == [
        ("Release notes",),
        ("Release notes", "Install"),
        ("Release notes", "Install", "Upgrade"),
        ("Release notes", "Known issues"),
    ]
    assert (
        "# this is a comment, not a heading\npip install app" in paths[("Release notes", "Install")]
    )
    assert paths[("Release notes", "Known issues")] == "Known issues\n\nNone so far."


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café crème, Größe, naïve Straße.\nÀ bientôt, garçon !".encode("latin-1"), "À bientôt"),
        ("Prix : 5 € — “entre guillemets”, déjà payé.".encode("cp1252"), "5 € — “entre"),
        ("Résumé in UTF-16 with a BOM: ünïcödé".encode("utf-16"), "ünïcödé"),
        ("Résumé in UTF-16-LE without a BOM.".encode("utf-16-le"), "Résumé in UTF-16-LE"),
        ("UTF-8 with a BOM: Ærøskøbing".encode("utf-8-sig"), "Ærøskøbing"),
        ("日本語のテキストです。これは文字コードのテストです。".encode("shift_jis"), "文字コード"),
    ],
    ids=["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-8-sig", "shift-jis"],
)
def test_it_decodes_text_in_common_encodings(data, expected):
    document = parse_document(data, "notes.txt")
    assert document.file_type == "text" and document.title == "notes"
    assert expected in document.sections[0].text


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (bytes(range(256)) * 8, "binary data"),
        (b"GIF89a" + bytes(64), "GIF image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "old Office file"),
    ],
)
def test_it_rejects_binary_files(data, looks_like):
    with pytest.raises(UnsupportedTypeError, match=looks_like):
        parse_document(data, "report.txt")


def test_it_rejects_an_empty_file():
    with pytest.raises(EmptyDocumentError, match="The file is empty."):
        parse_document(b"", "empty.txt")


def test_it_rejects_a_text_file_that_holds_only_whitespace():
    with pytest.raises(EmptyDocumentError, match="The file holds no text."):
        parse_document(b" \n\t\r\n  ", "blank.txt")


def test_it_rejects_html_without_visible_text():
    with pytest.raises(EmptyDocumentError):
        parse_document(b"<html><body><script>x()</script></body></html>", "page.html")


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"junk\n%PDF-1.4\n", "report.txt", "pdf"),
        (b"Notes on the %PDF marker of a file.", "notes.pdf", "text"),
        (b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "page.txt", "html"),
        (b"<p>One</p><p>Two</p><p>Three</p><p>Four</p><div>Five</div>", "", "html"),
        (b"# Title\n\nSome *text* and a [link](http://x.org).\n", "notes.txt", "markdown"),
        (b"Plain words only.", "README.md", "markdown"),
        (b"Plain words only.\n# not a heading without more markdown", "notes.txt", "text"),
        (b"Plain words only.", "page.pdf", "text"),
    ],
)
def test_it_detects_the_file_type_from_the_content_first(data, filename, expected):
    assert detect_file_type(data, filename) == expected


def test_it_reads_a_pdf_whose_extension_lies():
    document = parse_document(pdf_bytes("zen_of_python_corrupted.pdf"), "zen.txt")
    assert (
        document.file_type == "pdf"
        and "Beautiful is better than ugly." in document.sections[0].text
    )


def test_the_parsing_module_never_imports_django():
    code = "import sys, retrieval.parsing; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


# pypdf, the named PDF library, is the reference for the pdfium text we index.
READABLE_BY_BOTH = [
    "GeoTopo-komprimiert.pdf",
    "Seige_of_Vicksburg_Sample_OCR.pdf",
    "ca-warn-report.pdf",
    "chelsea_pdta.pdf",
    "dmca.pdf",
    "f1040nr.pdf",
    "federal-register-2020-17221.pdf",
    "issue-67-example.pdf",
    "libreoffice-form.pdf",
    "multicolumn.pdf",
    "multilang.pdf",
    "naacl06-shinyama.pdf",
    "nics-background-checks-2015-11.pdf",
    "r6-owner-password.pdf",
    "zen_of_python_corrupted.pdf",
]


def words_by_page(texts: list[str]) -> list[set[str]]:
    import re
    import unicodedata

    return [set(re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())) for text in texts]


@pytest.mark.parametrize("name", READABLE_BY_BOTH)
def test_indexed_pdf_text_matches_pypdf_page_by_page(name):
    data = (PDFS / name).read_bytes()
    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        reader.decrypt("")
    reference = words_by_page([page.extract_text() or "" for page in reader.pages])
    ours = {section.page: section.text for section in parse_document(data, name).sections}
    indexed = words_by_page([ours.get(number, "") for number in range(1, len(reference) + 1)])
    for number, (expected, got) in enumerate(zip(reference, indexed, strict=True), start=1):
        if len(expected) < 5:
            continue
        shared = len(expected & got) / len(expected)
        assert shared >= 0.7, f"page {number}: only {shared:.0%} of pypdf's words"


def test_a_page_pypdf_decodes_to_garbage_is_read_as_text():
    """senate-expenditures.pdf is out of the comparison above: with the packages installed here
    pypdf decodes its fonts to text like 'o(hô..i.p3xSTRxtT3xR2tTOR', which is no reference."""
    data = (PDFS / "senate-expenditures.pdf").read_bytes()
    text = " ".join(section.text for section in parse_document(data, "x.pdf").sections)
    for phrase in ("BAIN, J MATTHEW", "DISTRICT DIRECTOR", "LEGISLATIVE CORRESPONDENT"):
        assert phrase in text


def test_chinese_full_width_punctuation_is_kept_for_readers():
    text = "员工入职满一年后，每年享有十五天带薪年假（含周末）！需要申请吗？ ﬁle ＡＢＣ"
    section = parse_document(text.encode(), "leave.txt").sections[0].text
    assert "员工入职满一年后，每年享有十五天带薪年假（含周末）！需要申请吗？" in section
    assert section.endswith("file ABC")  # ligatures and full-width letters are still folded
