"""Every page at a desktop width (1280 px) and a phone's (390 px): nothing scrolls sideways, the
chat's feedback buttons wait for the answer, a failed upload's bar is red with its reason, and
the upload page follows many files with one status request at a time, with backoff.

Screenshots of the chat, upload, document list and admin at both widths are kept in the
artefacts folder (tests/artifacts/ by default), named PAGE-WIDTH.png.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from knowledge import answering, dispatch, ingestion
from tests.conftest import PDFS
from tests.e2e.test_browser import embedder, log_in, worker  # noqa: F401  (fixtures)
from tests.factories import add_file, add_text, make_knowledge_base, make_user

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WIDTHS = [1280, 390]
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
GUIDE = (
    "# Leave\n\nEmployees take up to **25 days** of paid leave a year; requests go to the team "
    "lead in the `leave` tool. Sick leave is reported before 10 am on the first day.\n\n"
    "# Travel\n\nFlights shorter than six hours are booked in economy class."
)
# Records whether the feedback buttons were ever visible while the answer was streaming.
WATCH_FEEDBACK = """() => {
  window.feedbackWhileStreaming = false;
  window.sawStreaming = false;
  const check = () => {
    for (const turn of document.querySelectorAll(".turn.assistant")) {
      if (!turn.querySelector(".answer.streaming")) continue;
      window.sawStreaming = true;
      if (turn.querySelector(".feedback").checkVisibility()) window.feedbackWhileStreaming = true;
    }
  };
  new MutationObserver(check).observe(document.getElementById("transcript"),
    {subtree: true, childList: true, attributes: true, characterData: true});
}"""


@pytest.fixture
def admin():
    return make_user("ada", is_staff=True, is_superuser=True)


@pytest.fixture
def handbook(admin, embedder):  # noqa: F811
    knowledge_base = make_knowledge_base("handbook", members=[admin])
    knowledge_base.description = "The company's `handbook`: leave, travel and **expenses**."
    knowledge_base.save()
    ingestion.ingest_document(add_text(knowledge_base, "leave-and-travel.md", GUIDE).pk)
    ingestion.ingest_document(add_file(knowledge_base, PDFS / "naacl06-shinyama.pdf").pk)
    ingestion.ingest_document(
        add_file(knowledge_base, PDFS / "issue-848-truncated-at-50pct.pdf").pk
    )
    name = "a-very-long-file-name-without-any-spaces-that-would-widen-the-table-on-a-phone.md"
    ingestion.ingest_document(add_text(knowledge_base, name, "# Long\n\nLong names wrap.").pk)
    return knowledge_base


def fits(page) -> bool:
    return page.evaluate(NO_SIDEWAYS_SCROLL)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_width_without_sideways_scrolling(
    live_server, admin, handbook, browser_page, artifacts_dir, width
):
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    answer = answering.answer_question("How many days of leave a year?", [handbook], user=admin)
    page.goto(f"{live_server.url}/accounts/login/")
    too_wide = {} if fits(page) else {"login": page.evaluate("document.body.scrollWidth")}
    log_in(page, live_server, admin)
    pages = {
        "chat": f"/chat/{answer.conversation}/",
        "upload": f"/knowledge-bases/{handbook.pk}/upload/",
        "documents": f"/knowledge-bases/{handbook.pk}/",
        "admin": "/admin/knowledge/document/",
        "home": "/",
        "passage": f"/passages/{answer.citations[0].chunk_id}/",
    }
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        if name == "upload":  # with a failed and a refused file listed
            page.set_input_files(
                "#file-input",
                files=[
                    {"name": "empty.md", "mimeType": "text/markdown", "buffer": b""},
                    {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"},
                ],
            )
            page.locator("#upload-list li[data-state=failed]").nth(1).wait_for()
        if name == "documents" and width < 600:
            page.locator("details.menu summary").first.click()  # an open actions menu fits too
        page.screenshot(path=str(artifacts_dir / f"{name}-{width}.png"), full_page=True)
        if not fits(page):
            too_wide[name] = page.evaluate("document.documentElement.scrollWidth")
    assert too_wide == {}, f"wider than {width} px: {too_wide}"


def test_the_chat_at_phone_width_folds_the_conversation_list(
    live_server, admin, handbook, browser_page
):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 800})
    answering.answer_question("How many days of leave a year?", [handbook], user=admin)
    log_in(page, live_server, admin)
    page.goto(f"{live_server.url}/chat/")
    assert page.locator("#conversations").get_attribute("open") is None
    assert not page.locator("#conversation-list").is_visible()
    page.locator("#conversations summary").click()
    assert page.locator("#conversation-list li a").first.is_visible()
    logout = page.locator("header.site form:not(.languages) button")
    box = logout.bounding_box()
    assert box and box["x"] + box["width"] <= 390, box  # Log out stays on screen


def test_feedback_buttons_wait_until_the_answer_is_complete(
    live_server, admin, handbook, browser_page, artifacts_dir
):
    page = browser_page
    log_in(page, live_server, admin)
    page.goto(f"{live_server.url}/chat/?kb={handbook.pk}")
    page.evaluate(WATCH_FEEDBACK)
    page.fill("#question", "How many days of paid leave a year, and who approves them?")
    page.click("#ask-button")
    answer = page.locator(".turn.assistant").last
    answer.locator(".answer a.citation").first.wait_for()
    assert page.evaluate("window.sawStreaming")
    assert page.evaluate("window.feedbackWhileStreaming") is False
    assert answer.locator(".feedback").is_visible()  # and shown once it is complete
    assert answer.locator(".feedback button.rate").first.is_visible()


def test_a_failed_file_has_a_red_bar_and_a_reason_that_starts_like_every_failure(
    live_server,
    worker,  # noqa: F811  (the fixture imported above)
    admin,
    handbook,
    browser_page,
    artifacts_dir,
    tmp_path,  # noqa: F811
):
    page = browser_page
    log_in(page, live_server, admin)
    page.goto(f"{live_server.url}/knowledge-bases/{handbook.pk}/upload/")
    page.set_input_files(
        "#file-input",
        files=[
            {"name": "naacl06-shinyama.pdf", "mimeType": "application/pdf",  # already there
             "buffer": (PDFS / "naacl06-shinyama.pdf").read_bytes()},
            {"name": "broken.pdf", "mimeType": "application/pdf",
             "buffer": (PDFS / "issue-848-truncated-at-50pct.pdf").read_bytes()[:-9]},
            {"name": "empty.md", "mimeType": "text/markdown", "buffer": b""},
            {"name": "README", "mimeType": "text/plain", "buffer": b"Read me first."},
        ],
    )  # fmt: skip
    rows = page.locator("#upload-list li")
    try:
        rows.nth(1).and_(page.locator("[data-state=failed]")).wait_for(timeout=60_000)
        rows.first.and_(page.locator("[data-state=indexed]")).wait_for(timeout=30_000)
    except Exception:
        raise AssertionError(f"{rows.all_inner_texts()}\nworker log:\n{worker.log()}") from None
    page.screenshot(path=str(artifacts_dir / "upload-failed-1280.png"), full_page=True)
    texts = [row.locator(".status").inner_text() for row in rows.all()]
    assert texts[1] == "Failed: The PDF is truncated or damaged and could not be read."
    assert texts[2] == "Failed: empty.md is empty."
    assert texts[3].startswith("Failed: README has no file type ending (such as .pdf)")
    assert ".pdf .docx" in texts[3]
    assert "empty.md (0 bytes)" in rows.nth(2).inner_text()
    colours = [
        row.locator("progress").evaluate("bar => getComputedStyle(bar).accentColor")
        for row in rows.all()
    ]
    assert colours[1] == colours[2] == colours[3] == "rgb(180, 35, 24)"  # --bad
    assert colours[0] == "rgb(2, 122, 72)"  # --good: indexed
    values = [row.locator("progress").evaluate("bar => bar.value") for row in rows.all()]
    assert values == [100, 100, 100, 100]


def test_one_status_request_follows_all_64_files_with_backoff(
    live_server,
    worker,  # noqa: F811  (the fixture imported above)
    admin,
    browser_page,
    artifacts_dir,
    tmp_path,  # noqa: F811
):
    page = browser_page
    knowledge_base = make_knowledge_base("many", members=[admin])
    files = []
    for number in range(64):
        path = tmp_path / f"note-{number:02}.md"
        path.write_text(f"# Note {number}\n\nThe code word of note {number} is w{number * 7}.")
        files.append(str(path))
    requests: list[tuple[float, str]] = []
    page.on(
        "request",
        lambda request: (
            "/status/" in request.url and requests.append((time.monotonic(), request.url))
        ),
    )
    log_in(page, live_server, admin)
    page.goto(f"{live_server.url}/knowledge-bases/{knowledge_base.pk}/upload/")
    started = time.monotonic()
    page.set_input_files("#file-input", files)
    indexed = page.locator("#upload-list li[data-state=indexed]")
    deadline = time.monotonic() + 240
    while indexed.count() < 64:
        assert time.monotonic() < deadline, (indexed.count(), worker.log()[-3000:])
        page.wait_for_timeout(500)
    finished = time.monotonic()
    page.wait_for_timeout(3000)  # nothing more is asked once all are settled
    per_file = [url for _, url in requests if re.search(r"/documents/\d+/status/", url)]
    assert per_file == []  # never one request per file
    batched = [when for when, url in requests if "/documents/status/?ids=" in url]
    assert batched and all(when <= finished + 0.1 for when in batched)
    seconds = finished - started
    rate = len(batched) / seconds
    gaps = [later - earlier for earlier, later in zip(batched, batched[1:], strict=False)]
    assert min(gaps, default=1) >= 0.9  # one at a time, at most one a second
    assert rate <= 1.0
    figures = {
        "files": 64,
        "status_requests": len(batched),
        "seconds_until_all_indexed": round(seconds, 1),
        "requests_per_second": round(rate, 2),
        "longest_gap_s": round(max(gaps, default=0), 1),
    }
    (artifacts_dir / "upload_status_rate.json").write_text(json.dumps(figures, indent=2))
    print("status requests for 64 files:", figures)


def test_the_document_list_follows_indexing_and_offers_the_new_states_actions(
    live_server,
    worker,  # noqa: F811  (the fixture imported above)
    admin,
    browser_page,
):
    page = browser_page
    knowledge_base = make_knowledge_base("live", members=[admin])
    log_in(page, live_server, admin)
    document = add_text(knowledge_base, "notes.md", "# Notes\n\nThe code word is heron.")
    page.goto(f"{live_server.url}/knowledge-bases/{knowledge_base.pk}/")
    row = page.locator(f"#documents tr[data-document='{document.pk}']")
    assert row.get_attribute("data-state") == "queued"
    visible = "forms => forms.filter(f => !f.hidden).map(f => f.action.split('/').at(-2))"
    assert row.locator("form[data-states]").evaluate_all(visible) == ["delete"]
    dispatch.enqueue_ingestion(document)
    try:
        row.and_(page.locator("[data-state=indexed]")).wait_for(timeout=60_000)
    except Exception:
        raise AssertionError(worker.log()[-3000:]) from None
    assert row.locator("td.chunks").inner_text() == "1"
    assert row.locator("form[data-states]").evaluate_all(visible) == [
        "disable", "reindex", "replace", "delete"
    ]  # fmt: skip
