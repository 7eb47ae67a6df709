"""The interface in English and Chinese: the language comes from the browser's Accept-Language or
the switcher in the header; pages, the scripts' words, chat and API errors are translated; the
zh-hans catalogue is complete and zh-hant is made from it. The catalogues are really compiled
(tests/conftest.py `catalogues`), so these tests fail without them."""

from __future__ import annotations

import ast
import contextlib
import json
import re
import shutil

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from knowledge import components
from knowledge.catalogues import SIMPLIFIED, read_catalogue
from knowledge.document_errors import FIXED_ERRORS
from knowledge.models import Conversation, Document, Message
from tests.conftest import PDFS, REPO_ROOT
from tests.factories import add_file, indexed_text, make_knowledge_base, make_user
from tests.knowledge.apiclient import sse_json, token_client
from tests.openai_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalogues", "extractive_mode")]

SIMPLIFIED_CATALOGUES = sorted((REPO_ROOT / "locale" / SIMPLIFIED / "LC_MESSAGES").glob("*.po"))
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w+\}")
HANDBOOK = (
    "# Sick leave\n\nReport sick leave to the team lead before 10 am on the first day. "
    "A doctor's note is needed from the fourth day of absence."
)


@pytest.fixture(autouse=True)
def default_language_afterwards():
    """The test client leaves the last request's language active in this thread: later tests
    that call the code directly must not inherit Chinese."""
    yield
    translation.deactivate()


@pytest.fixture
def member():
    return make_user("mei", is_staff=True)


@pytest.fixture
def handbook(member):
    return make_knowledge_base("handbook", members=[member])


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def html_of(client: Client, url: str, accept_language: str) -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=accept_language)
    assert response.status_code == 200
    return response.content.decode()


# --- Pages --------------------------------------------------------------------------------------

ENGLISH_WORDS = ["Knowledge bases", "New conversation", "Ask a question", "Log out", "Documents"]


@pytest.mark.parametrize(
    ("accept_language", "lang", "words"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-hans", ["知识库", "新对话", "提问", "退出登录", "文档"]),
        ("zh-Hans", "zh-hans", ["知识库", "新对话", "提问", "退出登录", "文档"]),
        ("zh-TW,zh;q=0.9,en;q=0.8", "zh-hant", ["知識庫", "新對話", "提問", "登出", "文件"]),
        ("zh-HK", "zh-hant", ["知識庫", "新對話", "提問", "登出", "文件"]),
        ("en-US,en;q=0.9", "en", ENGLISH_WORDS),
        ("fr-FR,fr;q=0.9", "en", ENGLISH_WORDS),  # a language we do not speak: English
    ],
)
def test_the_pages_speak_the_browsers_language(member, handbook, accept_language, lang, words):
    client = logged_in(member)
    home = html_of(client, reverse("knowledge:home"), accept_language)
    chat = html_of(client, reverse("knowledge:chat"), accept_language)
    for html in (home, chat):
        assert f'<html lang="{lang}">' in html
    for word in words:
        assert word in home + chat, word
    if lang != "en":
        for word in ENGLISH_WORDS:
            assert word not in home + chat, word


def test_the_login_page_speaks_chinese_before_anyone_logs_in():
    simplified = html_of(Client(), reverse("login"), "zh-CN")
    traditional = html_of(Client(), reverse("login"), "zh-TW")
    assert "<h1>登录</h1>" in simplified and "<h1>登入</h1>" in traditional
    failed = Client().post(
        reverse("login"), {"username": "nobody", "password": "x"}, HTTP_ACCEPT_LANGUAGE="zh-CN"
    )
    assert "用户名或密码不正确。" in failed.content.decode()


def test_the_switcher_changes_the_language_and_it_is_remembered(member, handbook):
    client = logged_in(member)
    english = html_of(client, reverse("knowledge:home"), "en")
    assert f'action="{reverse("set_language")}"' in english
    assert 'value="en" lang="en" aria-current="true" disabled>English</button>' in english
    assert 'value="zh-hans" lang="zh-hans">简体中文</button>' in english
    assert 'value="zh-hant" lang="zh-hant">繁體中文</button>' in english

    choice = {"language": "zh-hans", "next": "/chat/"}
    switched = client.post(reverse("set_language"), choice, HTTP_ACCEPT_LANGUAGE="en")
    assert switched.status_code == 302 and switched["Location"] == "/chat/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    chat = html_of(client, "/chat/", "en")  # the browser still prefers English
    assert '<html lang="zh-hans">' in chat and "新对话" in chat

    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert '<html lang="en">' in html_of(client, "/", "zh-CN")


def test_a_stored_answer_shows_its_mode_in_the_interface_language(member, handbook):
    conversation = Conversation.objects.create(user=member, title="病假")
    Message.objects.create(conversation=conversation, role="user", text="病假怎么请？")
    Message.objects.create(
        conversation=conversation, role="assistant", text="向组长报告。", mode="extractive"
    )
    url = reverse("knowledge:conversation", args=[conversation.pk])
    html = html_of(logged_in(member), url, "zh-CN")
    assert ">摘录式回答：直接引用来源中的句子，未使用语言模型</div>" in html
    # The labels the script shows for a streamed answer come with the page, translated.
    assert 'data-llm="由语言模型生成的回答"' in html
    assert ">有帮助</button>" in html and ">重新生成</button>" in html


def test_the_fallback_notice_is_in_the_interface_language(member, handbook, llm_server, settings):
    indexed_text(handbook, "leave.md", HANDBOOK)
    settings.RAG_LLM_BASE_URL, settings.RAG_LLM_MODEL = llm_server.url, "test-model"
    settings.RAG_LLM_MAX_RETRIES = 0
    components.reset_llm_clients()
    llm_server.script(Reply(status=500), Reply(status=500))
    client = logged_in(member)
    response = client.post(
        reverse("knowledge:answer_stream"),
        {"question": "How do I report sick leave?", "knowledge_bases": [handbook.pk]},
        HTTP_ACCEPT_LANGUAGE="zh-CN",
    )
    done = dict(sse_json(b"".join(response.streaming_content).decode()))["done"]
    components.reset_llm_clients()
    assert done["mode"] == "extractive"
    assert done["notice"].startswith("语言模型暂不可用（"), done["notice"]
    assert done["notice"].endswith("），以下回答直接摘自文档。")
    page = html_of(client, reverse("knowledge:conversation", args=[done["conversation"]]), "zh-CN")
    assert done["notice"] in page


def test_chat_errors_are_in_the_interface_language(member, handbook):
    client = logged_in(member)
    stream = reverse("knowledge:answer_stream")
    empty = client.post(stream, {"question": " "}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert empty.status_code == 400
    assert empty.json() == {"error": "请先输入问题。 请至少选择一个知识库。"}
    question = {"question": "病假怎么请？", "knowledge_bases": [10**6]}
    missing = client.post(stream, question, HTTP_ACCEPT_LANGUAGE="zh-TW")
    assert missing.status_code == 404 and missing.json() == {"error": "知識庫不存在。"}


def test_the_scripts_get_their_words_in_the_interface_language(client):
    def catalogue(accept_language: str) -> dict:
        script = client.get(reverse("javascript-catalog"), HTTP_ACCEPT_LANGUAGE=accept_language)
        found = re.search(r"const newcatalog = (\{.*?\});", script.content.decode(), re.S)
        return json.loads(found.group(1)) if found else {}

    simplified, traditional = catalogue("zh-CN"), catalogue("zh-TW")
    assert simplified["Searching…"] == "正在检索…"
    assert simplified["%(title)s, page %(page)s"] == "%(title)s，第 %(page)s 页"
    assert simplified["Found %s passage; writing the answer…"] == ["找到 %s 个段落，正在生成回答…"]
    assert traditional["Searching…"] == "正在檢索…"
    assert "Searching…" not in catalogue("en")  # English is the text in the scripts


def test_a_failed_documents_reason_is_in_the_interface_language(member, handbook):
    document = add_file(handbook, PDFS / "issue-848-truncated-at-50pct.pdf")
    reason = "The PDF is truncated or damaged and could not be read."
    Document.objects.filter(pk=document.pk).update(state=Document.State.FAILED, error=reason)
    client = logged_in(member)
    status = client.get(
        reverse("knowledge:document_status", args=[document.pk]), HTTP_ACCEPT_LANGUAGE="zh-CN"
    )
    assert status.json()["error"] == "该 PDF 不完整或已损坏，无法读取。"
    assert status.json()["state_label"] == "失败"
    listed = html_of(client, reverse("knowledge:knowledge_base", args=[handbook.pk]), "zh-TW")
    assert "該 PDF 不完整或已損壞，無法讀取。" in listed
    english = client.get(reverse("knowledge:document_status", args=[document.pk]))
    assert english.json()["error"] == reason


def test_each_translated_document_error_is_still_one_the_code_writes():
    """FIXED_ERRORS must follow the parsers' sentences, or their translations stop matching."""
    written = set()
    for path in [*REPO_ROOT.glob("retrieval/*.py"), *REPO_ROOT.glob("knowledge/*.py")]:
        if path.name == "document_errors.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        written |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    assert [error for error in FIXED_ERRORS if error not in written] == []


# --- API errors ---------------------------------------------------------------------------------


def test_api_errors_speak_chinese_and_keep_their_codes(member, handbook):
    client = token_client(member)
    missing = client.get(
        "/api/v1/knowledge-bases/987654/documents/", HTTP_ACCEPT_LANGUAGE="zh-Hans"
    )
    assert missing.status_code == 404
    assert missing.json() == {"detail": "知识库不存在：987654。", "code": "not_found"}
    english = client.get("/api/v1/knowledge-bases/987654/documents/", HTTP_ACCEPT_LANGUAGE="en")
    assert english.json() == {"detail": "No such knowledge base: 987654.", "code": "not_found"}

    invalid = client.post("/api/v1/search/", {}, format="json", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert invalid.status_code == 400 and invalid.json()["code"] == "invalid"
    assert invalid.json()["detail"] == "请求无效：query: 该字段是必填项。"

    upload = client.post(
        f"/api/v1/knowledge-bases/{handbook.pk}/documents/",
        {"file": SimpleUploadedFile("tool.exe", b"MZ" * 10)},
        format="multipart",
        HTTP_ACCEPT_LANGUAGE="zh-TW",
    )
    assert upload.status_code == 415 and upload.json()["code"] == "unsupported_type"
    assert upload.json()["detail"].startswith("tool.exe 是 .exe 檔案，無法讀取；請上傳 .pdf ")

    anonymous = APIClient().get("/api/v1/knowledge-bases/", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "身份认证信息未提供。", "code": "not_authenticated"}


# --- The catalogues -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SIMPLIFIED_CATALOGUES, ids=lambda path: path.name)
def test_every_message_has_a_chinese_translation(path):
    entries = [entry for entry in read_catalogue(path.read_text("utf-8")) if entry.msgid]
    assert len(entries) > 10
    for entry in entries:
        assert not entry.fuzzy, entry.msgid
        assert entry.msgstr and all(text.strip() for text in entry.msgstr), entry.msgid
        placeholders = sorted(PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
        for text in entry.msgstr:
            assert sorted(PLACEHOLDER.findall(text)) == placeholders, entry.msgid


def test_the_catalogues_hold_every_string_marked_for_translation(tmp_path, settings):
    """makemessages over a copy of the code finds no string the catalogues lack (after changing
    a user-facing text: `make makemessages`, then translate the new entries)."""
    for folder in ("knowledge", "templates", "rag_site"):
        ignored = shutil.ignore_patterns("__pycache__", "migrations")
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder, ignore=ignored)
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    (tmp_path / "locale").mkdir()
    with contextlib.chdir(tmp_path):
        for domain in ("django", "djangojs"):
            call_command("makemessages", locale=[SIMPLIFIED], domain=domain, verbosity=0)
    for domain in ("django", "djangojs"):
        name = f"{SIMPLIFIED}/LC_MESSAGES/{domain}.po"
        found = read_catalogue((tmp_path / "locale" / name).read_text("utf-8"))
        ours = read_catalogue((REPO_ROOT / "locale" / name).read_text("utf-8"))
        missing = {entry.msgid for entry in found} - {entry.msgid for entry in ours}
        assert not missing, f"{domain}.po lacks {sorted(missing)}"
