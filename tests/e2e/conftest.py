"""Browser fixtures: Playwright driving Debian's Chromium (never a downloaded browser).

Without /usr/bin/chromium the browser tests skip, except under REQUIRE_SERVICES=1 (CI), where
they fail: `make browser` installs it (apt-get install chromium).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")


def chromium_path() -> Path | None:
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and figures of the browser tests (RAG_TEST_ARTIFACTS, default
    tests/artifacts/, which git ignores)."""
    path = Path(os.environ.get("RAG_TEST_ARTIFACTS") or REPO_ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser_context_options() -> dict:
    """Playwright's new_context() options; a test module overrides this fixture to change them
    (e.g. {"locale": "zh-CN"}: the browser's language and its Accept-Language)."""
    return {}


@pytest.fixture
def browser_page(monkeypatch, browser_context_options) -> Iterator[object]:
    """A Chromium page. Playwright's sync API runs an event loop in this thread while it is
    open, so Django's guard against ORM calls from async code is lifted for the test (and the
    browser lives only as long as the test)."""
    executable = chromium_path()
    if executable is None:
        message = "Chromium is not installed at /usr/bin/chromium; run `make browser`."
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable))
        options = {"viewport": {"width": 1400, "height": 1000}, **browser_context_options}
        context = browser.new_context(**options)
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()
        # Connections the test opened while Playwright's loop ran live in that loop's context:
        # close them here, or the test database cannot be dropped at the end of the run.
        from django.db import connections

        connections.close_all()
