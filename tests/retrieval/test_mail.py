"""E-mail messages made with the standard library's email package, read back."""

from __future__ import annotations

import io
from email.message import EmailMessage

import docx
import pytest

from retrieval.errors import EmptyDocumentError
from retrieval.parsing import detect_file_type, parse_document


@pytest.fixture(autouse=True)
def data_dir():
    """No Django needed: this replaces the suite-wide fixture that sets Django settings."""


def word_file(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def message(body: str = "", html: str = "") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Anna Schmidt <anna@example.com>"
    mail["To"] = "team@example.com"
    mail["Subject"] = "办公室搬迁 / Office move"
    mail["Date"] = "Mon, 01 Dec 2025 10:00:00 +0000"
    if body:
        mail.set_content(body)
    if html:
        mail.add_alternative(html, subtype="html") if body else mail.set_content(html, "html")
    return mail


def test_a_message_is_one_page_of_headers_and_plain_body():
    mail = message("We move to the new office on Friday.\n新地址：人民路 88 号。")
    data = bytes(mail)
    assert detect_file_type(data, "move.txt") == "eml"  # judged from the content
    document = parse_document(data, "move.eml")
    assert document.file_type == "eml" and document.page_count == 1
    assert document.title == "办公室搬迁 / Office move"
    text = document.sections[0].text
    assert text.startswith("From: Anna Schmidt <anna@example.com>\nTo: team@example.com\n")
    assert "Subject: 办公室搬迁 / Office move" in text
    assert text.endswith("人民路 88 号。")
    assert "\n\nWe move to the new office on Friday.\n新地址" in text


def test_an_html_only_message_is_read_as_visible_text():
    mail = message(
        html="<html><body><p>Parking <b>closes</b> at 8 pm.</p>"
        "<script>var x = 1;</script></body></html>"
    )
    text = parse_document(bytes(mail), "parking.eml").sections[0].text
    assert "Parking closes at 8 pm." in text and "var x" not in text


def test_attachments_of_readable_types_are_returned_and_others_noted():
    mail = message("The signed contract is attached.")
    contract = word_file("The rent is 1,200 euros a month.")
    mail.add_attachment(
        contract, maintype="application", subtype="octet-stream", filename="contract.docx"
    )
    mail.add_attachment(
        b"MZ\x90\x00" + bytes(100),
        maintype="application",
        subtype="octet-stream",
        filename="setup.exe",
    )
    document = parse_document(bytes(mail), "contract.eml")
    assert [(item.name, item.data) for item in document.attachments] == [
        ("contract.docx", contract)
    ]
    assert document.sections[0].text.endswith("Attachments: contract.docx")
    assert document.warnings and "setup.exe was not indexed" in document.warnings[0]


def test_a_message_without_text_or_attachments_is_empty():
    with pytest.raises(EmptyDocumentError):
        parse_document(bytes(message(" ")), "blank.eml")
