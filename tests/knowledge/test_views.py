"""The HTML pages through the test client: uploads, the document list, sources, permissions."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from knowledge import components, documents, indexing, search, uploads
from knowledge.models import Chunk, Document, Feedback, Message
from rag_site.settings import default_embedding_model
from tests.conftest import PDFS, REPO_ROOT
from tests.factories import add_file, add_text, ingested, make_knowledge_base
from tests.openai_server import Reply

pytestmark = pytest.mark.django_db

HANDBOOK = b"""# Leave policy

Employees take up to 25 days of paid leave a year; requests go to the team lead.

## Sick leave

Report sick leave to the team lead before 10 am on the first day.
"""


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"  # the pages are under test, not the model
    # A million PBKDF2 rounds per persona would dominate these tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, knowledge_base, *files: SimpleUploadedFile, **extra):
    return client.post(
        reverse("knowledge:upload", args=[knowledge_base.pk]),
        {"file": list(files), **extra},
        headers={"accept": "application/json"},
    )


def without_tokens(html: bytes) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html.decode())


# --- Upload -------------------------------------------------------------------------------------


def test_a_staff_member_uploads_several_files_and_each_reaches_indexed(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    files = [
        SimpleUploadedFile("leave.md", HANDBOOK),
        SimpleUploadedFile("paper.pdf", (PDFS / "naacl06-shinyama.pdf").read_bytes()),
    ]
    client = logged_in(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, handbook, *files)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["error"] for result in results] == [None, None]
    for result in results:
        status = client.get(result["document"]["status_url"]).json()
        assert status["state"] == "indexed" and status["progress"] == 100
        assert status["chunk_count"] > 0
    paper = Document.objects.get(original_name="paper.pdf")
    assert paper.page_count == 8 and paper.uploaded_by == owner


def test_an_upload_of_a_type_we_do_not_read_is_refused_with_its_name(owner, handbook):
    response = upload(logged_in(owner), handbook, SimpleUploadedFile("setup.exe", b"MZ\x90\x00"))
    assert response.status_code == 400
    error = response.json()["results"][0]["error"]
    assert error.startswith("setup.exe is a .exe file, which cannot be read; upload .pdf .docx")
    response = upload(logged_in(owner), handbook, SimpleUploadedFile("README", b"Read me."))
    error = response.json()["results"][0]["error"]
    assert error.startswith("README has no file type ending (such as .pdf), so it cannot be read")
    assert not Document.objects.exists()


def test_an_upload_over_the_size_limit_is_refused(owner, handbook, settings):
    settings.RAG_MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("big.txt", b"word " * 300_000)
    response = upload(logged_in(owner), handbook, big)
    assert response.status_code == 400
    assert response.json()["results"][0]["error"] == "big.txt is larger than the 1 MB upload limit."


def test_each_file_is_judged_on_its_own(owner, handbook):
    response = upload(
        logged_in(owner),
        handbook,
        SimpleUploadedFile("empty.md", b""),
        SimpleUploadedFile("leave.md", HANDBOOK),
    )
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["error"] == "empty.md is empty." and second["error"] is None
    assert second["document"]["state"] == "queued"


def test_a_file_that_cannot_be_parsed_reports_why_in_its_status(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    client = logged_in(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, handbook, SimpleUploadedFile("report.txt", b"\x00\x01" * 600))
    status = client.get(response.json()["results"][0]["document"]["status_url"]).json()
    assert status["state"] == "failed"
    assert status["error"] == "The file looks like binary data, not a document we can read."


def test_uploading_the_same_content_again_says_it_is_already_there(owner, handbook):
    client = logged_in(owner)
    upload(client, handbook, SimpleUploadedFile("leave.md", HANDBOOK))
    result = upload(client, handbook, SimpleUploadedFile("copy.md", HANDBOOK)).json()["results"][0]
    assert result["duplicate"] is True
    assert "already in this knowledge base" in result["message"]
    assert Document.objects.count() == 1


def test_a_member_who_is_not_staff_reads_but_may_not_upload(member, handbook):
    client = logged_in(member)
    assert client.get(reverse("knowledge:knowledge_base", args=[handbook.pk])).status_code == 200
    response = upload(client, handbook, SimpleUploadedFile("leave.md", HANDBOOK))
    assert response.status_code == 403
    assert response.json()["error"].startswith("You may read this knowledge base but not change")
    assert not Document.objects.exists()


def test_an_upload_without_the_csrf_token_is_refused(owner, handbook):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = upload(client, handbook, SimpleUploadedFile("leave.md", HANDBOOK))
    assert response.status_code == 403
    assert not Document.objects.exists()


def test_the_upload_page_has_a_drop_zone_and_a_multiple_file_input(owner, handbook):
    response = logged_in(owner).get(reverse("knowledge:upload", args=[handbook.pk]))
    html = response.content.decode()
    assert 'id="drop-zone"' in html
    assert re.search(r'<input type="file" name="file" id="file-input" multiple', html)
    assert "csrfmiddlewaretoken" in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


# --- Document list and actions -----------------------------------------------------------------


def test_the_document_list_shows_state_pages_and_chunks(owner, handbook):
    paper = ingested(add_file(handbook, PDFS / "naacl06-shinyama.pdf"))
    broken = ingested(add_file(handbook, PDFS / "issue-848-truncated-at-50pct.pdf"))
    response = logged_in(owner).get(reverse("knowledge:knowledge_base", args=[handbook.pk]))
    html = response.content.decode()
    row = html[html.index(f'data-document="{paper.pk}"') :]
    assert re.search(
        r'<td class="pages number optional">8</td>\s*<td class="chunks number">'
        f"{paper.chunk_count}<",
        row,
    )
    assert "The PDF is truncated or damaged and could not be read." in html
    assert f'data-document="{broken.pk}" data-state="failed"' in html


def test_disable_enable_and_delete_from_the_document_list(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    document = ingested(add_text(handbook, "leave.md", HANDBOOK.decode()))
    client = logged_in(owner)

    def act(action: str):
        with django_capture_on_commit_callbacks(execute=True):  # the queued index publish
            return client.post(reverse("knowledge:document_action", args=[document.pk, action]))

    assert act("disable").status_code == 302
    assert Document.objects.get(pk=document.pk).state == "disabled"
    assert search.search_passages([handbook], "sick leave") == []
    act("enable")
    assert Document.objects.get(pk=document.pk).state == "indexed"
    assert search.search_passages([handbook], "sick leave")
    act("delete")
    assert not Document.objects.filter(pk=document.pk).exists()
    assert indexing.check_index(handbook).problems == []


def actions_offered(html: str, document: Document) -> list[str]:
    """The actions of the document's row that are not hidden, in order."""
    row = html[html.index(f'data-document="{document.pk}"') :]
    row = row[: row.index("</tr>")]
    shown = re.findall(r'<form[^>]*action="[^"]*/(\w+)/"[^>]*data-states="[^"]*"(?! hidden)', row)
    return shown


def test_each_row_offers_only_the_actions_that_apply_to_its_state(owner, handbook):
    indexed = ingested(add_text(handbook, "leave.md", HANDBOOK.decode()))
    failed = ingested(add_file(handbook, PDFS / "issue-848-truncated-at-50pct.pdf"))
    disabled = ingested(add_text(handbook, "old.md", "# Old\n\nAn old policy."))
    documents.set_document_enabled(disabled, False)
    queued = add_text(handbook, "new.md", "# New\n\nA new policy.")
    html = logged_in(owner).get(reverse("knowledge:knowledge_base", args=[handbook.pk])).text
    assert actions_offered(html, indexed) == ["disable", "reindex", "replace", "delete"]
    assert actions_offered(html, failed) == ["reindex", "replace", "delete"]
    assert actions_offered(html, disabled) == ["enable", "delete"]
    assert actions_offered(html, queued) == ["delete"]
    assert html.count('<details class="menu">') == 4  # one menu per row, not four buttons


def test_an_action_that_does_not_apply_is_refused_and_changes_nothing(owner, handbook):
    failed = ingested(add_file(handbook, PDFS / "issue-848-truncated-at-50pct.pdf"))
    client = logged_in(owner)
    response = client.post(
        reverse("knowledge:document_action", args=[failed.pk, "disable"]), follow=True
    )
    assert Document.objects.get(pk=failed.pk).state == "failed"
    assert "is Failed: that cannot be done to it now." in response.text


def test_the_document_list_searches_by_file_name_or_title_sorts_and_pages(owner, handbook):
    for number in range(1, 56):
        add_text(handbook, f"memo-{number:02}.md", f"# Memo number {number}\n\nText {number}.")
    travel = add_text(handbook, "travel.md", "# Expense rules\n\nReceipts within thirty days.")
    Document.objects.filter(pk=travel.pk).update(title="Expense rules")  # as ingestion sets it
    client = logged_in(owner)
    url = reverse("knowledge:knowledge_base", args=[handbook.pk])

    first = client.get(url, {"sort": "name"}).text
    names = re.findall(r'title="([^"]+)">\1</a>', first)
    assert names[:2] == ["memo-01.md", "memo-02.md"] and len(names) == 50
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = client.get(url, {"sort": "name", "page": 2}).text
    assert re.findall(r'title="([^"]+)">\1</a>', second)[-1] == "travel.md"
    backwards = client.get(url, {"sort": "-name"}).text
    assert re.findall(r'title="([^"]+)">\1</a>', backwards)[0] == "travel.md"

    by_title = client.get(url, {"q": "expense"}).text  # the title, not the file name
    assert re.findall(r'title="([^"]+)">\1</a>', by_title) == ["travel.md"]
    assert "1 of 56 document matches." in by_title
    by_name = client.get(url, {"q": "MEMO-3"}).text
    assert len(re.findall(r'title="(memo-3\d\.md)"', by_name)) == 10
    assert "No document matches the search." in client.get(url, {"q": "nothing"}).text
    assert client.get(url, {"sort": "bogus", "page": "x"}).status_code == 200


def test_one_status_request_answers_for_many_documents(owner, member, handbook):
    documents = [add_text(handbook, f"note-{n}.md", f"# Note {n}\n\nText.") for n in range(3)]
    foreign = add_text(make_knowledge_base("board"), "secret.md", "# Secret\n\nText.")
    ids = ",".join(str(d.pk) for d in [*documents, foreign]) + ",999999"
    response = logged_in(member).get(reverse("knowledge:documents_status"), {"ids": ids})
    assert response.status_code == 200
    found = response.json()["documents"]
    assert sorted(item["id"] for item in found) == sorted(d.pk for d in documents)
    assert {item["state"] for item in found} == {"queued"}
    assert response["Cache-Control"] == "no-store"
    for bad in ("", "x", ",".join(["1"] * 501)):
        response = logged_in(member).get(reverse("knowledge:documents_status"), {"ids": bad})
        assert response.status_code == 400


def test_a_member_who_is_not_staff_may_not_delete(member, handbook):
    document = add_text(handbook, "leave.md", HANDBOOK.decode())
    response = logged_in(member).post(
        reverse("knowledge:document_action", args=[document.pk, "delete"])
    )
    assert response.status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()


def test_a_replacement_takes_the_place_of_the_document_once_indexed(
    owner, handbook, eager_celery, django_capture_on_commit_callbacks
):
    old = ingested(add_text(handbook, "leave.md", HANDBOOK.decode()))
    new_text = HANDBOOK.replace(b"25 days", b"30 days")
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(owner).post(
            reverse("knowledge:document_replace", args=[old.pk]),
            {"file": SimpleUploadedFile("leave-2025.md", new_text)},
        )
    assert response.status_code == 302
    assert not Document.objects.filter(pk=old.pk).exists()
    (replacement,) = Document.objects.all()
    assert replacement.original_name == "leave-2025.md" and replacement.state == "indexed"
    assert "30 days" in search.search_passages([handbook], "paid leave days")[0].text


# --- Files and passages ---------------------------------------------------------------------------


def test_a_pdf_opens_in_the_browser_for_members(member, handbook):
    paper = ingested(add_file(handbook, PDFS / "naacl06-shinyama.pdf"))
    response = logged_in(member).get(reverse("knowledge:document_file", args=[paper.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="naacl06-shinyama.pdf"'
    assert b"".join(response.streaming_content) == (PDFS / "naacl06-shinyama.pdf").read_bytes()


def test_other_files_download_under_a_safe_name_and_never_render(member, handbook):
    page = (
        b"<html><body><h1>Intranet</h1><script>alert(1)</script><p>Hello there.</p></body></html>"
    )
    stored = uploads.add_document(
        handbook, '../../evil"\r\nX-Injected: 1.html', SimpleUploadedFile("x", page)
    ).document
    response = logged_in(member).get(reverse("knowledge:document_file", args=[stored.pk]))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Security-Policy"] == "sandbox"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert "\n" not in disposition and "\r" not in disposition and "../" not in disposition
    assert "X-Injected" not in response.headers


def test_the_passage_page_shows_the_cited_chunk_in_its_context(member, handbook):
    document = ingested(add_text(handbook, "leave.md", HANDBOOK.decode()))
    first, second = document.chunks.order_by("order")
    html = logged_in(member).get(reverse("knowledge:passage", args=[second.pk])).content.decode()
    assert f'class="chunk rendered cited" id="chunk-{second.pk}"' in html
    assert f'id="chunk-{first.pk}"' in html
    assert "Report sick leave" in html and "Leave policy › Sick leave" in html


MARKED_UP = """# Upload states

Each upload is **queued** first, then `processing`.

{% include note.html %}

![The states](states.png) A failed upload says why.
"""


def test_markdown_in_passages_descriptions_and_sources_is_rendered_never_raw(member, handbook):
    handbook.description = "The `handbook` of **every** team."
    handbook.save()
    document = ingested(add_text(handbook, "states.md", MARKED_UP))
    chunk = document.chunks.order_by("order").first()
    # Markup that reached a chunk (from a parser that kept it, or stored before one stripped it).
    Chunk.objects.filter(pk=chunk.pk).update(text=MARKED_UP)
    client = logged_in(member)
    pages = {
        "passage": client.get(reverse("knowledge:passage", args=[chunk.pk])).text,
        "home": client.get(reverse("knowledge:home")).text,
        "documents": client.get(reverse("knowledge:knowledge_base", args=[handbook.pk])).text,
    }
    assert "<strong>queued</strong>" in pages["passage"]
    assert "<code>processing</code>" in pages["passage"]
    for text in pages.values():
        assert "**" not in text and "{% include" not in text and "![The states]" not in text
    for name in ("home", "documents"):
        assert "The <code>handbook</code> of <strong>every</strong> team." in pages[name]
    answer = done(ask(client, "What state is an upload in first?", [handbook]))
    (source, *_) = answer["passages"]
    assert "<strong>queued</strong>" in source["html"] and "{%" not in source["html"]
    conversation = client.get(reverse("knowledge:conversation", args=[answer["conversation"]]))
    assert '<div class="passage-text"><h1>Upload states</h1>' in conversation.text


# --- The same 404 for foreign and missing things ------------------------------------------------


def test_everything_of_a_foreign_knowledge_base_answers_exactly_like_something_missing(
    outsider, handbook
):
    document = ingested(add_text(handbook, "leave.md", HANDBOOK.decode()))
    chunk = document.chunks.first()
    missing = 10**6
    pages = [
        ("knowledge:knowledge_base", handbook.pk),
        ("knowledge:upload", handbook.pk),
        ("knowledge:document_status", document.pk),
        ("knowledge:document_file", document.pk),
        ("knowledge:passage", chunk.pk),
    ]
    client = logged_in(outsider)
    for name, pk in pages:
        foreign = client.get(reverse(name, args=[pk]))
        absent = client.get(reverse(name, args=[missing]))
        assert foreign.status_code == absent.status_code == 404, name
        assert without_tokens(foreign.content) == without_tokens(absent.content), name
    for action in ("disable", "delete"):
        foreign = client.post(reverse("knowledge:document_action", args=[document.pk, action]))
        absent = client.post(reverse("knowledge:document_action", args=[missing, action]))
        assert foreign.status_code == absent.status_code == 404
    replace = client.post(reverse("knowledge:document_replace", args=[document.pk]))
    assert replace.status_code == 404
    assert Document.objects.get(pk=document.pk).state == "indexed"
    assert b"leave" not in client.get(reverse("knowledge:home")).content


def test_pages_ask_anonymous_visitors_to_log_in(handbook):
    document = add_text(handbook, "leave.md", HANDBOOK.decode())
    for url in (
        reverse("knowledge:chat"),
        reverse("knowledge:knowledge_base", args=[handbook.pk]),
        reverse("knowledge:document_file", args=[document.pk]),
        reverse("knowledge:document_status", args=[document.pk]),
    ):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_favicon_is_found_for_every_page_including_the_admins():
    response = Client().get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/knowledge/favicon.ico"
    assert finders.find("knowledge/favicon.ico") and finders.find("knowledge/favicon.svg")


# --- Chat -----------------------------------------------------------------------------------------

SECRET_PAGE = """# Security notes

The vault combination is kept by the facilities team <script>alert("kb")</script> in room 4.

The vault alarm code <img src=x onerror=alert(1)> changes every month.
"""


def ask(client: Client, question: str, knowledge_bases, **extra):
    response = client.post(
        reverse("knowledge:answer_stream"),
        {"question": question, "knowledge_bases": [kb.pk for kb in knowledge_bases], **extra},
    )
    return response


def events(response) -> list[tuple[str, dict]]:
    body = b"".join(response.streaming_content).decode()
    parsed = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


def done(response) -> dict:
    return next(data for kind, data in events(response) if kind == "done")


@pytest.fixture
def indexed_handbook(handbook):
    ingested(add_text(handbook, "leave.md", HANDBOOK.decode()))
    return handbook


@pytest.mark.slow
def test_the_example_question_is_answered_from_the_demo_documents(member, handbook, settings):
    """The chat box's placeholder asks something that the documents `make run` ingests answer,
    with the embedding model it uses."""
    settings.RAG_EMBEDDING_MODEL = default_embedding_model()
    for path in sorted((REPO_ROOT / "docs").glob("*.md")):
        ingested(add_text(handbook, path.name, path.read_text()))
    page = logged_in(member).get(reverse("knowledge:chat")).text
    placeholder = re.search(r'id="question"[^>]*placeholder="e\.g\. ([^"]+)"', page).group(1)
    answer = done(ask(logged_in(member), placeholder, [handbook]))
    cited = {citation["document_title"] for citation in answer["citations"]}
    assert "User guide" in cited, answer
    assert "PDF" in answer["answer"] or "50 MB" in answer["answer"], answer["answer"]


def test_the_chat_page_offers_only_the_knowledge_bases_the_user_reads(member, handbook):
    make_knowledge_base("board-minutes")
    html = logged_in(member).get(reverse("knowledge:chat")).content.decode()
    assert f'name="knowledge_bases" value="{handbook.pk}" checked' in html
    assert "board-minutes" not in html
    assert 'id="ask-form"' in html and "csrfmiddlewaretoken" in html


def test_an_answer_streams_as_server_sent_events_with_sources_deltas_and_done(
    member, indexed_handbook
):
    response = ask(logged_in(member), "How do I report sick leave?", [indexed_handbook])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    assert response.streaming
    stream = events(response)
    kinds = [kind for kind, _ in stream]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta"}
    answer = stream[-1][1]
    assert (
        "".join(data["text"] for kind, data in stream if kind == "delta").strip()
        == (answer["answer"])
    )
    assert answer["mode"] == "extractive"
    assert answer["citations"], answer
    citation = answer["citations"][0]
    assert citation["url"] == reverse("knowledge:passage", args=[citation["chunk_id"]])
    assert (
        f'<a class="citation" href="{citation["url"]}" data-n="{citation["n"]}"' in (answer["html"])
    )
    assert all(passage["url"] for passage in stream[0][1]["passages"])


def test_a_pdf_citation_opens_the_file_at_its_page(member, handbook):
    ingested(add_file(handbook, PDFS / "naacl06-shinyama.pdf"))
    answer = done(ask(logged_in(member), "What is unrestricted relation discovery?", [handbook]))
    citation = answer["citations"][0]
    file_url = reverse("knowledge:document_file", args=[citation["document_id"]])
    assert citation["page"] and citation["url"] == f"{file_url}#page={citation['page']}"


def test_a_follow_up_continues_the_conversation_shown_on_its_page(member, indexed_handbook):
    client = logged_in(member)
    first = done(ask(client, "How many days of paid leave are there?", [indexed_handbook]))
    follow_up = done(
        ask(
            client,
            "And who approves it?",
            [indexed_handbook],
            conversation=first["conversation"],
        )
    )
    assert follow_up["conversation"] == first["conversation"]
    html = client.get(reverse("knowledge:conversation", args=[first["conversation"]])).content
    html = html.decode()
    assert html.index("How many days of paid leave") < html.index("And who approves it?")
    assert html.count('class="turn assistant"') == 3  # two answers and the template
    assert f'data-message-id="{follow_up["message"]}"' in html
    assert "Extractive answer" in html
    chat = client.get(reverse("knowledge:chat")).content.decode()
    assert reverse("knowledge:conversation", args=[first["conversation"]]) in chat


def test_nothing_from_a_document_can_run_script_in_an_answer(member, handbook):
    ingested(add_text(handbook, "security.txt", SECRET_PAGE))  # Markdown would drop the tags
    client = logged_in(member)
    answer = done(ask(client, "Who keeps the vault combination and the alarm code?", [handbook]))
    assert "alert" in answer["answer"]  # the hostile text is quoted, without its markup...
    assert "<script" not in answer["answer"] and "<img" not in answer["answer"]
    for html in (
        answer["html"],
        client.get(reverse("knowledge:conversation", args=[answer["conversation"]])).content,
    ):
        html = html if isinstance(html, str) else html.decode()
        assert "<script>alert" not in html and "<img" not in html  # ...and only as text


def test_a_question_about_a_foreign_knowledge_base_answers_404_like_a_missing_one(
    outsider, indexed_handbook
):
    client = logged_in(outsider)
    foreign = ask(client, "How do I report sick leave?", [indexed_handbook])
    missing = client.post(
        reverse("knowledge:answer_stream"), {"question": "Hello?", "knowledge_bases": [10**6]}
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"error": "No such knowledge base."}


def test_another_users_conversation_answers_404(member, owner, indexed_handbook):
    answer = done(ask(logged_in(member), "How do I report sick leave?", [indexed_handbook]))
    client = logged_in(owner)
    page = client.get(reverse("knowledge:conversation", args=[answer["conversation"]]))
    assert page.status_code == 404
    stream = ask(client, "Again?", [indexed_handbook], conversation=answer["conversation"])
    assert stream.status_code == 404
    feedback = client.post(reverse("knowledge:feedback", args=[answer["message"]]), {"rating": 1})
    assert feedback.status_code == 404
    assert not Feedback.objects.exists()


def test_a_question_needs_text_and_a_knowledge_base(member, indexed_handbook):
    client = logged_in(member)
    empty = client.post(reverse("knowledge:answer_stream"), {"question": " "})
    assert empty.status_code == 400
    assert empty.json()["error"] == "Type a question first. Choose at least one knowledge base."


def test_the_answer_stream_needs_the_csrf_token(member, indexed_handbook):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    assert ask(client, "How do I report sick leave?", [indexed_handbook]).status_code == 403


def test_thumbs_down_with_a_comment_is_recorded_on_the_answer(member, indexed_handbook):
    client = logged_in(member)
    answer = done(ask(client, "How do I report sick leave?", [indexed_handbook]))
    url = reverse("knowledge:feedback", args=[answer["message"]])
    assert client.post(url, {"rating": 1}).json() == {"rating": 1, "saved": True}
    client.post(url, {"rating": -1, "comment": "It missed the 10 am deadline."})
    (feedback,) = Feedback.objects.all()
    assert (feedback.rating, feedback.comment, feedback.user) == (
        -1,
        "It missed the 10 am deadline.",
        member,
    )
    page = client.get(reverse("knowledge:conversation", args=[answer["conversation"]]))
    assert 'data-rating="-1" aria-pressed="true"' in page.content.decode()
    assert client.post(url, {"rating": 5}).status_code == 400


def test_regenerate_answers_the_last_question_again_in_place(member, indexed_handbook):
    client = logged_in(member)
    first = done(ask(client, "How do I report sick leave?", [indexed_handbook]))
    again = done(
        ask(
            client,
            "How do I report sick leave?",
            [indexed_handbook],
            conversation=first["conversation"],
            regenerate="on",
        )
    )
    assert again["conversation"] == first["conversation"]
    texts = list(
        Message.objects.filter(conversation=first["conversation"]).values_list("role", "pk")
    )
    assert texts == [("user", texts[0][1]), ("assistant", again["message"])]


def test_the_page_says_when_the_language_model_answered(
    member, indexed_handbook, llm_server, settings
):

    settings.RAG_LLM_BASE_URL, settings.RAG_LLM_MODEL = llm_server.url, "test-model"
    components.reset_llm_clients()
    llm_server.script(Reply(text="Report it to the **team lead** before 10 am [1]."))
    client = logged_in(member)
    answer = done(ask(client, "How do I report sick leave?", [indexed_handbook]))
    components.reset_llm_clients()
    assert answer["mode"] == "llm"
    assert "<strong>team lead</strong>" in answer["html"]
    page = client.get(reverse("knowledge:conversation", args=[answer["conversation"]]))
    assert "Answered by the language model" in page.content.decode()


def test_the_page_shows_a_notice_when_the_language_model_fails(
    member, indexed_handbook, llm_server, settings
):
    settings.RAG_LLM_BASE_URL, settings.RAG_LLM_MODEL = llm_server.url, "test-model"
    settings.RAG_LLM_MAX_RETRIES = 0
    components.reset_llm_clients()
    llm_server.script(Reply(status=500), Reply(status=500))
    client = logged_in(member)
    answer = done(ask(client, "How do I report sick leave?", [indexed_handbook]))
    components.reset_llm_clients()
    assert answer["mode"] == "extractive"
    assert answer["notice"].startswith("The language model is unavailable")
    assert answer["citations"]
    page = client.get(reverse("knowledge:conversation", args=[answer["conversation"]]))
    assert "The language model is unavailable" in page.content.decode()  # kept on reload
