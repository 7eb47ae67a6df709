"""The content security policy that every response now carries breaks none of the pages that
were served without it before: the admin and the API docs run in Chromium with no violation."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser import log_in
from tests.factories import make_knowledge_base, make_user

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_admin_and_the_api_docs_run_under_the_policy(live_server, browser_page):
    page = browser_page
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    admin = make_user("root", is_staff=True, is_superuser=True)
    make_knowledge_base("handbook", members=[admin])
    log_in(page, live_server, admin)
    for path in (
        "/admin/",
        "/admin/knowledge/document/",
        "/admin/knowledge/knowledgebase/1/change/",
    ):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200 and response.headers["content-security-policy"]
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title")  # Swagger UI's script ran and drew
    assert "Company knowledge API" in page.inner_text(".swagger-ui .info .title")
    assert violations == []
