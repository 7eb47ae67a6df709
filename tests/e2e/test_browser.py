"""A person in a real browser: log in, upload a real PDF, watch it reach indexed through a real
Celery worker, ask about it, read the streamed answer, and follow its citation to the page.

Runs against Django's threaded live server (server-sent events need a thread per request) and
the broker the suite is configured with. The weightless hashing embedder keeps the worker's
start and the ingestion within seconds; the real model is exercised by the ingestion tests.
"""

from __future__ import annotations

import json
import re

import pytest
from django.conf import settings

from knowledge import ingestion
from knowledge.models import Chunk, Document
from tests.conftest import PDFS
from tests.factories import add_text, make_knowledge_base, make_user

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EMBEDDING_MODEL = "hashing:384"
PAPER = PDFS / "naacl06-shinyama.pdf"
TRUNCATED = "issue-848-truncated-at-50pct.pdf"

# Records every state the first upload row passes through, to prove the progress was shown.
WATCH_UPLOAD_STATES = """() => {
  window.uploadStates = [];
  new MutationObserver((records) => {
    for (const record of records) {
      const row = record.target;
      if (row !== row.parentNode.firstElementChild) continue;
      const state = row.dataset.state;
      if (state && window.uploadStates.at(-1) !== state) window.uploadStates.push(state);
    }
  }).observe(document.getElementById("upload-list"),
             {subtree: true, attributes: true, attributeFilter: ["data-state"]});
}"""


@pytest.fixture
def embedder(settings, monkeypatch):
    settings.RAG_EMBEDDING_MODEL = EMBEDDING_MODEL
    monkeypatch.setenv("RAG_EMBEDDING_MODEL", EMBEDDING_MODEL)  # for the worker process


@pytest.fixture
def worker(embedder, start_worker):
    return start_worker()  # after embedder, whose model the worker process reads


@pytest.fixture
def member():
    return make_user("erin", is_staff=True)


def log_in(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", f"pw-{user.username}")
    page.click("main button[type=submit]")  # not the language buttons in the header
    page.wait_for_url(f"{live_server.url}/")


def test_upload_watch_indexing_ask_and_follow_the_citation_to_its_page(
    live_server, worker, member, browser_page, artifacts_dir, settings, tmp_path
):
    page = browser_page
    settings.RAG_MAX_UPLOAD_MB = 1
    knowledge_base = make_knowledge_base("research", members=[member])
    (tmp_path / "tool.exe").write_bytes(b"MZ" * 100)
    (tmp_path / "big.txt").write_text("word " * 300_000)
    log_in(page, live_server, member)

    page.goto(f"{live_server.url}/knowledge-bases/{knowledge_base.pk}/upload/")
    page.evaluate(WATCH_UPLOAD_STATES)
    files = [PAPER, PDFS / TRUNCATED, tmp_path / "tool.exe", tmp_path / "big.txt"]
    page.set_input_files("#file-input", [str(path) for path in files])
    rows = page.locator("#upload-list li")
    row = rows.first
    try:
        row.and_(page.locator("[data-state=indexed]")).wait_for(timeout=60_000)
        rows.nth(1).and_(page.locator("[data-state=failed]")).wait_for(timeout=30_000)
    except Exception:
        raise AssertionError(f"{rows.all_inner_texts()}\nworker log:\n{worker.log()}") from None
    assert "8 page(s)" in row.inner_text()
    assert rows.nth(1).locator(".status").inner_text() == (
        "Failed: The PDF is truncated or damaged and could not be read."
    )
    assert "Failed: tool.exe is a .exe file, which cannot be read" in rows.nth(2).inner_text()
    assert "big.txt is larger than the 1 MB upload limit." in rows.nth(3).inner_text()
    states = page.evaluate("window.uploadStates")
    assert states[0] == "uploading" and states[-1] == "indexed"
    assert {"queued", "processing"} & set(states), states
    document_id = int(row.get_attribute("data-document"))

    page.goto(f"{live_server.url}/knowledge-bases/{knowledge_base.pk}/")
    listed = page.locator(f"#documents tr[data-document='{document_id}']")
    assert listed.get_attribute("data-state") == "indexed"
    assert listed.locator("td.pages").inner_text() == "8"
    page.screenshot(path=str(artifacts_dir / "documents.png"), full_page=True)

    page.goto(f"{live_server.url}/chat/?kb={knowledge_base.pk}")
    page.fill("#question", "What is unrestricted relation discovery?")
    page.click("#ask-button")
    answer = page.locator(".turn.assistant").last
    answer.locator(".answer a.citation").first.wait_for()
    figures = {
        "browser_first_token_ms": int(answer.get_attribute("data-first-token-ms")),
        "browser_total_ms": int(answer.get_attribute("data-total-ms") or 0),
    }
    assert "Extractive answer" in answer.locator(".mode").text_content()
    source = answer.locator(".sources li").first
    source_label = source.locator("a.source-link").inner_text()
    source_text = source.locator(".passage-text").inner_text()
    page.screenshot(path=str(artifacts_dir / "chat.png"), full_page=True)

    citation = answer.locator(".answer a.citation").first
    with page.context.expect_page() as opened:
        citation.click()
    source_page = opened.value
    source_page.wait_for_load_state()
    match = re.fullmatch(
        rf"{re.escape(live_server.url)}/documents/{document_id}/file/#page=(\d+)", source_page.url
    )
    assert match, source_page.url
    page_number = int(match.group(1))
    cited = Chunk.objects.filter(document_id=document_id, page=page_number)
    assert any(" ".join(chunk.text.split()) == " ".join(source_text.split()) for chunk in cited)
    assert source_label.endswith(f"page {page_number}")

    server_timings = Document.objects.get(pk=document_id).knowledge_base.conversations.get()
    timings = server_timings.messages.get(role="assistant").timings
    figures["server_first_token_ms"] = timings["first_token_ms"]
    figures["server_retrieval_ms"] = timings["retrieval_ms"]
    (artifacts_dir / "browser_timings.json").write_text(json.dumps(figures, indent=2))
    print("time to first streamed token:", figures)


HOSTILE = """# Visitor policy

Visitors sign in at the front desk <script>window.pwned = 1; alert("script")</script> and
wear a badge <img src=x onerror="window.pwned = 2; alert('img')"> at all times.

Badges are returned to the front desk when visitors leave the building.
"""


def test_nothing_in_a_document_runs_as_script_in_the_chat(
    live_server, embedder, member, browser_page, artifacts_dir
):
    page = browser_page
    knowledge_base = make_knowledge_base("policies", members=[member])
    # plain text: Markdown parsing would drop the tags, which must instead be shown as text
    ingestion.ingest_document(add_text(knowledge_base, "visitors.txt", HOSTILE).pk)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server, member)

    page.goto(f"{live_server.url}/chat/?kb={knowledge_base.pk}")
    page.fill("#question", "Where do visitors sign in and wear a badge?")
    page.click("#ask-button")
    answer = page.locator(".turn.assistant").last
    answer.locator(".answer a.citation").first.wait_for()
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    text = answer.locator(".answer").inner_text()
    assert "Visitors sign in at the front desk" in text and "<script>" not in text  # not quoted
    page.reload()  # the stored conversation, rendered by the server
    page.locator(".turn.assistant .answer a.citation").first.wait_for()
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.evaluate("window.pwned") is None
    assert page.locator(".answer script, .answer img, .sources img").count() == 0
    assert settings.RAG_EMBEDDING_MODEL == EMBEDDING_MODEL
