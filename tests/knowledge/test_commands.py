"""The management commands, run as a user runs them (call_command with real files)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from knowledge.models import Document, KnowledgeBase
from tests.conftest import PDFS

pytestmark = pytest.mark.django_db

# The outcome each file of ../shared/data/pdfs/MANIFEST.md must reach without a password.
EXPECTED = {
    "175.pdf": {"indexed"},  # scanned: read with OCR
    "GeoTopo-komprimiert.pdf": {"indexed"},
    "Seige_of_Vicksburg_Sample_OCR.pdf": {"indexed"},
    "aes-256.pdf": {"failed"},
    "ca-warn-report.pdf": {"indexed"},
    "chelsea_pdta.pdf": {"indexed"},
    "dmca.pdf": {"indexed"},
    "empty.pdf": {"failed"},
    "f1040nr.pdf": {"indexed"},
    "federal-register-2020-17221.pdf": {"indexed"},
    "issue-67-example.pdf": {"indexed"},
    "issue-848-truncated-at-50pct.pdf": {"failed", "indexed"},
    "jo.pdf": {"indexed", "failed"},
    "libreoffice-form.pdf": {"indexed"},
    "libreoffice-writer-password.pdf": {"failed"},
    "multicolumn.pdf": {"indexed"},
    "multilang.pdf": {"indexed"},
    "naacl06-shinyama.pdf": {"indexed"},
    "nics-background-checks-2015-11.pdf": {"indexed"},
    "pdf-with-jbig2.pdf": {"indexed"},  # scanned: read with OCR
    "r4-aes-user-password.pdf": {"failed"},
    "r6-owner-password.pdf": {"indexed"},
    "senate-expenditures.pdf": {"indexed"},
    "simple1.pdf": {"indexed", "failed"},
    "unreadablemetadata.pdf": {"failed"},
    "zen_of_python_corrupted.pdf": {"indexed"},
    "MANIFEST.md": {"indexed"},  # a folder is ingested whole
}
PAGES = {
    "175.pdf": 2,
    "GeoTopo-komprimiert.pdf": 117,
    "chelsea_pdta.pdf": 65,
    "dmca.pdf": 18,
    "ca-warn-report.pdf": 16,
    "issue-67-example.pdf": 22,
}


def run_ingest(*args: str) -> tuple[list[dict], CommandError | None]:
    out = StringIO()
    try:
        call_command("ingest", *args, "--json", stdout=out)
        error = None
    except CommandError as raised:
        error = raised
    rows = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return rows, error


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_ingest_gives_every_manifest_pdf_its_expected_outcome(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:384"  # parsing is under test, not the model
    settings.RAG_OCR_DPI = 200  # 175.pdf was scanned at 200 dpi
    rows, error = run_ingest(str(PDFS), "--kb", "pdfs")
    outcomes = {row["file"].rsplit("/", 1)[-1]: row for row in rows}
    assert set(outcomes) == set(EXPECTED)
    for name, row in outcomes.items():
        assert row["status"] in EXPECTED[name], (name, row)
        assert set(row) == {"file", "status", "pages", "chunks", "error"}
        if row["status"] == "failed":
            assert row["error"] and row["chunks"] == 0, name
        else:
            assert row["chunks"] > 0 and row["error"] is None, name
    for name, pages in PAGES.items():
        assert outcomes[name]["pages"] == pages, name
    assert error is not None and error.returncode == 1
    call_command("check_index", "--kb", "pdfs", stdout=StringIO())
    scanned = Document.objects.get(original_name="175.pdf").chunks
    texts = scanned.values_list("page", "text")
    pages = {page: " ".join(text for number, text in texts if number == page) for page in (1, 2)}
    assert "Oversize Tire Accessory Kit" in pages[1] and "Main Gear" in pages[2]


def test_ingest_skips_content_it_already_has_and_reports_it():
    first, _ = run_ingest(str(PDFS / "r6-owner-password.pdf"), "--kb", "kb")
    again, error = run_ingest(str(PDFS / "r6-owner-password.pdf"), "--kb", "kb")
    assert first[0]["status"] == "indexed"
    assert again[0]["status"] == "skipped" and again[0]["chunks"] == first[0]["chunks"]
    assert error is None
    out = StringIO()
    call_command("ingest", str(PDFS / "r6-owner-password.pdf"), "--kb", "kb", stdout=out)
    assert out.getvalue().startswith(f"skipped {PDFS / 'r6-owner-password.pdf'}: ")


def test_ingest_with_a_password_opens_an_encrypted_pdf():
    rows, error = run_ingest(
        str(PDFS / "r4-aes-user-password.pdf"), "--kb", "kb", "--password", "asdfzxcv"
    )
    assert rows[0]["status"] == "indexed" and error is None


def test_ingest_prints_one_readable_line_per_file():
    out = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "ingest", str(PDFS / "empty.pdf"), str(PDFS / "dmca.pdf"), "--kb", "kb", stdout=out
        )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("error") and "empty" in lines[0]
    assert lines[1].startswith("ok") and "18 page(s)" in lines[1]


def test_ingest_refuses_a_path_that_does_not_exist():
    with pytest.raises(CommandError, match="does not exist"):
        call_command("ingest", "no/such/file.pdf", "--kb", "kb")


def test_check_index_exits_non_zero_and_says_what_differs_after_tampering():
    run_ingest(str(PDFS / "dmca.pdf"), "--kb", "kb")
    Document.objects.update(state=Document.State.DISABLED)  # behind the services' back
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("check_index", "--kb", "kb", stdout=out)
    assert raised.value.returncode == 1
    assert "INCONSISTENT" in out.getvalue() and "not in the database" in out.getvalue()
    call_command("rebuild_index", "--kb", "kb", stdout=StringIO())
    call_command("check_index", "--kb", "kb", stdout=StringIO())


def test_check_index_flags_documents_of_another_embedder_until_rebuild_reembeds_them(settings):
    """A base embedded by one model and searched with another: check_index says so (vectors of
    two models do not compare), and rebuild_index --reembed embeds those documents again."""
    settings.RAG_EMBEDDING_MODEL = "hashing:256"
    run_ingest(str(PDFS / "dmca.pdf"), str(PDFS / "multicolumn.pdf"), "--kb", "kb")
    base = KnowledgeBase.objects.get(name="kb")
    assert base.embedding_model == "hashing-256"
    assert set(base.documents.values_list("embedding_model", flat=True)) == {"hashing-256"}
    call_command("check_index", "--kb", "kb", stdout=StringIO())

    settings.RAG_EMBEDDING_MODEL = "hashing:128"
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_index", "--kb", "kb", stdout=out)
    assert "2 document(s) were embedded with 'hashing-256'" in out.getvalue()
    assert "rebuild_index --reembed" in out.getvalue()

    out = StringIO()
    call_command("rebuild_index", "--kb", "kb", "--reembed", stdout=out, stderr=StringIO())
    assert "(hashing-128)" in out.getvalue()
    base.refresh_from_db()
    assert base.embedding_model == "hashing-128"
    assert set(base.documents.values_list("embedding_model", flat=True)) == {"hashing-128"}
    assert set(base.documents.values_list("state", flat=True)) == {"indexed"}
    call_command("check_index", "--kb", "kb", stdout=StringIO())


def test_a_base_with_documents_of_two_embedders_is_labelled_mixed(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:256"
    run_ingest(str(PDFS / "dmca.pdf"), str(PDFS / "multicolumn.pdf"), "--kb", "kb")
    other = "/models/other (onnx-int8)"  # same dimension, another model
    Document.objects.filter(original_name="dmca.pdf").update(embedding_model=other)
    call_command("rebuild_index", "--kb", "kb", stdout=StringIO())
    assert KnowledgeBase.objects.get().embedding_model == f"mixed: {other}; hashing-256"


def test_bootstrap_demo_creates_the_admin_and_the_demo_knowledge_base(settings):
    out = StringIO()
    call_command("bootstrap_demo", stdout=out)
    assert "Log in at http://127.0.0.1:8000/" in out.getvalue()
    demo = KnowledgeBase.objects.get(name=settings.RAG_DEMO_KB)
    assert demo.members.filter(username="admin", is_superuser=True).exists()


def test_check_index_flags_chunks_in_another_base_than_their_document():
    """A document moved behind the services' back leaves its chunks (and their index entries)
    in its old base: check_index names them and exits non-zero."""
    run_ingest(str(PDFS / "dmca.pdf"), "--kb", "old")
    new = KnowledgeBase.objects.create(name="new")
    Document.objects.update(knowledge_base=new)
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("check_index", stdout=out)
    assert raised.value.returncode == 1
    assert "chunk(s) belong to a document of another knowledge base" in out.getvalue()
