"""Slides, spreadsheets, e-mail and scans through the real ingestion service: indexed page by
page, found by search, and cited at the slide, sheet or message in answers."""

from __future__ import annotations

import io
from email.message import EmailMessage

import docx
import openpyxl
import pptx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge import answering, documents, indexing, ingestion, search, uploads
from knowledge.models import Chunk, Document
from tests.factories import make_knowledge_base, make_user
from tests.knowledge.apiclient import token_client
from tests.retrieval.test_limits import bomb
from tests.scans import draw_page, english_paragraphs, image_pdf

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def extractive_defaults(extractive_mode):
    """Answers come from the extractive generator with the hashing embedder."""


def upload(knowledge_base, name: str, data: bytes) -> Document:
    document = uploads.add_document(knowledge_base, name, io.BytesIO(data)).document
    result = ingestion.ingest_document(document.pk)
    assert result is not None
    return result


def saved(thing) -> bytes:
    buffer = io.BytesIO()
    thing.save(buffer)
    return buffer.getvalue()


def slides() -> bytes:
    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Welcome"
    first.placeholders[1].text = "The onboarding week starts on Monday."
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Security"
    second.placeholders[1].text = "Badges are collected from the reception desk on floor two."
    second.notes_slide.notes_text_frame.text = "Lost badges cost 20 euros to replace."
    return saved(deck)


def offices() -> bytes:
    book = openpyxl.Workbook()
    book.active.title = "Teams"
    book.active.append(["Team", "Lead"])
    book.active.append(["Payroll", "Jonas Weber"])
    sheet = book.create_sheet("Offices")
    sheet.append(["City", "Office manager", "Phone"])
    sheet.append(["Lisbon", "Marta Costa", "+351 21 000 1234"])
    sheet.append(["Oslo", "Per Hansen", "+47 22 00 5678"])
    return saved(book)


def test_a_presentation_is_indexed_and_answers_cite_the_slide():
    knowledge_base = make_knowledge_base()
    document = upload(knowledge_base, "onboarding.pptx", slides())
    assert document.state == Document.State.INDEXED
    assert document.file_type == "pptx" and document.page_count == 2
    result = answering.answer_question("Where are badges collected?", [knowledge_base])
    assert "reception desk" in result.text
    assert result.citations[0].page == 2


def test_a_workbook_is_indexed_and_answers_cite_the_sheet():
    knowledge_base = make_knowledge_base()
    document = upload(knowledge_base, "offices.xlsx", offices())
    assert document.file_type == "xlsx" and document.page_count == 2
    pages = set(document.chunks.values_list("page", flat=True))
    assert pages == {1, 2}
    result = answering.answer_question("Who is the office manager in Lisbon?", [knowledge_base])
    assert "Marta Costa" in result.text
    citation = result.citations[0]
    assert citation.page == 2
    assert Chunk.objects.get(pk=citation.chunk_id).heading_path == "Offices"


def test_a_csv_file_is_indexed_as_one_page():
    knowledge_base = make_knowledge_base()
    data = b"Room,Capacity,Projector\nAtlas,12,yes\nBorealis,40,no\n"
    document = upload(knowledge_base, "rooms.csv", data)
    assert document.file_type == "csv" and document.page_count == 1
    passages = search.search_passages([knowledge_base], "Borealis capacity")
    assert passages and "Room: Borealis; Capacity: 40" in passages[0].text


def test_a_message_and_its_attachment_become_linked_documents():
    knowledge_base = make_knowledge_base()
    attachment = docx.Document()
    attachment.add_paragraph("The parking garage closes at 22:00 on weekdays.")
    mail = EmailMessage()
    mail["From"] = "facilities@example.com"
    mail["To"] = "all@example.com"
    mail["Subject"] = "Parking rules"
    mail["Date"] = "Tue, 02 Dec 2025 09:30:00 +0000"
    mail.set_content("Please read the attached parking rules before Friday.")
    mail.add_attachment(
        saved(attachment),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="parking.docx",
    )
    message = upload(knowledge_base, "parking.eml", bytes(mail))
    assert message.state == Document.State.INDEXED and message.file_type == "eml"
    attached = Document.objects.get(attached_to=message)
    assert attached.original_name == "parking.docx"
    assert attached.state == Document.State.INDEXED
    result = answering.answer_question("When does the parking garage close?", [knowledge_base])
    assert "22:00" in result.text
    assert result.citations[0].document_id == attached.pk
    assert indexing.check_index(knowledge_base).problems == []
    documents.delete_document(message)
    assert not Document.objects.filter(pk=attached.pk).exists()


def test_a_decompression_bomb_fails_clearly_and_leaves_nothing_indexed():
    knowledge_base = make_knowledge_base()
    document = upload(knowledge_base, "report.docx", bomb("docx", 300))
    assert document.state == Document.State.FAILED
    assert "expands to 300 MB" in document.error
    assert not Chunk.objects.filter(document=document).exists()


def test_with_ocr_turned_off_a_scan_fails_saying_it_needs_ocr(settings):
    settings.RAG_OCR_LANGUAGES = ""
    knowledge_base = make_knowledge_base()
    page, _ = draw_page(english_paragraphs(1))
    document = upload(knowledge_base, "scan.pdf", image_pdf([page]))
    assert document.state == Document.State.FAILED and "needs OCR" in document.error


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_a_scanned_pdf_is_searchable_and_progress_advances_per_page(settings):
    settings.RAG_OCR_DPI = 200
    knowledge_base = make_knowledge_base()
    first, _ = draw_page(english_paragraphs(1))
    second, _ = draw_page(english_paragraphs(3)[2:])
    document = uploads.add_document(
        knowledge_base, "scan.pdf", io.BytesIO(image_pdf([first, second]))
    ).document
    reported: list[int] = []
    document = ingestion.ingest_document(document.pk, progress=reported.append)
    assert document.state == Document.State.INDEXED and document.page_count == 2
    assert reported[:2] == [20, 40] and reported == sorted(reported)
    sentence = english_paragraphs(3)[2].split(". ")[0]
    passages = search.search_passages([knowledge_base], sentence)
    assert passages[0].document_id == document.pk and passages[0].page == 2


def test_the_api_and_the_upload_page_accept_the_new_types(client):
    owner = make_user("olivia", is_staff=True)
    knowledge_base = make_knowledge_base("files", members=[owner])
    picture = io.BytesIO()
    draw_page(["Scan"])[0].crop((0, 0, 400, 300)).save(picture, "PNG")
    files = {
        "onboarding.pptx": slides(),
        "offices.xlsx": offices(),
        "rooms.csv": b"Room,Capacity\nAtlas,12\n",
        "note.eml": b"From: a@example.com\nSubject: Hi\n\nHello there.\n",
        "scan.png": picture.getvalue(),
    }
    api = token_client(owner)
    url = f"/api/v1/knowledge-bases/{knowledge_base.pk}/documents/"
    for name, data in files.items():
        response = api.post(url, {"file": SimpleUploadedFile(name, data)}, format="multipart")
        assert response.status_code == 201, (name, response.content)
    client.force_login(owner)
    response = client.post(
        f"/knowledge-bases/{knowledge_base.pk}/upload/",
        {"file": [SimpleUploadedFile("scan.tiff", b"II*\x00" + bytes(64))]},
    )
    assert response.status_code in (200, 302)
    assert Document.objects.filter(original_name="scan.tiff").exists()


@pytest.mark.usefixtures("tesseract")
def test_a_knowledge_base_reads_scans_in_its_own_languages():
    knowledge_base = make_knowledge_base()
    knowledge_base.ocr_languages = "eng+klingon"
    knowledge_base.save()
    page, _ = draw_page(english_paragraphs(1))
    document = upload(knowledge_base, "scan.pdf", image_pdf([page]))
    assert document.state == Document.State.FAILED
    assert "install tesseract-ocr-klingon" in document.error
