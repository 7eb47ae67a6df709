"""A reader whose browser speaks Chinese: Chromium with the zh-CN locale gets the chat page in
Simplified Chinese from its Accept-Language, including the words the page's script writes while
an answer streams, reads the passage page in Chinese, and switches to English in the header.
Screenshots at desktop (1280 px) and phone (390 px) widths go to the artifacts folder."""

from __future__ import annotations

import pytest

from knowledge import ingestion
from tests.e2e.test_browser import EMBEDDING_MODEL, log_in
from tests.factories import add_text, make_knowledge_base, make_user

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("catalogues"),
]

LEAVE = """# Sick leave

Report sick leave to the team lead before 10 am on the first day of absence.

A doctor's note is needed from the fourth day of absence onwards.
"""


@pytest.fixture
def browser_context_options() -> dict:
    return {"locale": "zh-CN"}


def test_a_chinese_browser_gets_the_chat_in_chinese(
    live_server, browser_page, artifacts_dir, settings
):
    page = browser_page
    settings.RAG_EMBEDDING_MODEL = EMBEDDING_MODEL
    settings.RAG_LLM_BASE_URL = ""
    member = make_user("li", is_staff=True)
    knowledge_base = make_knowledge_base("员工手册", members=[member])
    ingestion.ingest_document(add_text(knowledge_base, "leave.md", LEAVE).pk)
    log_in(page, live_server, member)

    page.goto(f"{live_server.url}/chat/?kb={knowledge_base.pk}")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator("header.site").inner_text().split("\n")[0] == "企业知识库"
    assert page.locator("#ask-button").inner_text() == "提问"
    assert page.locator("aside a.button").inner_text() == "新对话"
    page.fill("#question", "When do I report sick leave to the team lead?")
    page.click("#ask-button")
    answer = page.locator(".turn.assistant").last
    answer.locator(".answer a.citation").first.wait_for()
    assert answer.locator(".mode").inner_text().startswith("摘录式回答")
    assert answer.locator(".sources h3").inner_text() == "来源"
    assert page.locator("#ask-status").inner_text().startswith("用时")
    assert answer.locator("button.regenerate").inner_text() == "重新生成"
    answer.locator("button.rate[data-rating='1']").click()
    page.locator(".feedback-status", has_text="感谢你的反馈。").wait_for()

    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artifacts_dir / f"chat-zh-{width}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px screen"

    with page.context.expect_page() as opened:
        answer.locator(".answer a.citation").first.click()
    passage = opened.value
    passage.wait_for_load_state()
    assert passage.locator("html").get_attribute("lang") == "zh-hans"
    assert passage.locator("#open-file").inner_text() == "下载 leave.md"
    passage.close()

    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("header.site form.languages button[value=en]")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("aside a.button").inner_text() == "New conversation"
    assert "Extractive answer" in page.locator(".turn.assistant .mode").last.text_content()


HANDBOOK_HANT = """# 員工手冊

## 休假

員工入職滿一年後，每年享有十五天帶薪年假。年假須提前兩週透過人事系統申請。

## 報銷

差旅費用須在出差結束後三十天內提交報銷單，並附上發票。
"""


def test_a_chinese_question_over_a_traditional_document_streams_a_cited_chinese_answer(
    live_server, browser_page, artifacts_dir, settings
):
    page = browser_page
    settings.RAG_EMBEDDING_MODEL = EMBEDDING_MODEL
    settings.RAG_LLM_BASE_URL = ""
    member = make_user("wang")
    knowledge_base = make_knowledge_base("手冊", members=[member])
    ingestion.ingest_document(add_text(knowledge_base, "handbook.md", HANDBOOK_HANT).pk)
    log_in(page, live_server, member)

    page.goto(f"{live_server.url}/chat/?kb={knowledge_base.pk}")
    assert page.locator("#ask-button").inner_text() == "提问"
    page.fill("#question", "员工每年有几天带薪年假？")  # Simplified question, Traditional text
    page.click("#ask-button")
    answer = page.locator(".turn.assistant").last
    citation = answer.locator(".answer a.citation").first
    citation.wait_for()
    text = answer.locator(".answer").inner_text()
    assert "每年享有十五天帶薪年假" in text
    assert citation.inner_text() == "[1]"
    answer.locator(".feedback").wait_for()
    assert answer.locator("button.regenerate").is_hidden()  # it would quote the same sentences
    assert answer.locator(".regenerate-hint").inner_text().startswith("摘录式回答每次都相同")
    page.screenshot(path=str(artifacts_dir / "chat-zh-traditional-1280.png"), full_page=True)

    with page.context.expect_page() as opened:
        citation.click()
    passage = opened.value
    passage.wait_for_load_state()
    assert "每年享有十五天帶薪年假" in passage.locator("main").inner_text()
    passage.screenshot(path=str(artifacts_dir / "passage-zh-traditional-1280.png"), full_page=True)
    passage.close()
