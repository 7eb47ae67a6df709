"""Defaults that hold on every response and every sign-in: security headers, lockouts after
failed sign-ins and bad tokens, HTTPS switched on by one setting, the API docs behind login."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import REPO_ROOT
from tests.factories import make_user
from tests.knowledge.apiclient import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.RAG_LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.RAG_LOGIN_FAILURES_PER_ADDRESS = 12
    settings.RAG_BAD_TOKENS_PER_ADDRESS = 6
    return settings


def sign_in(username: str, password: str, address: str = "10.0.0.1", url="/accounts/login/"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def signed_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


# --- Failed sign-ins ------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_after_too_many_wrong_passwords_even_the_right_one_is_refused(limits, url):
    make_user("carla", is_staff=True)
    assert signed_in(sign_in("carla", "pw-carla", url=url))
    for _ in range(5):
        assert not signed_in(sign_in("carla", "guess", url=url))
    refused = sign_in("carla", "pw-carla", url=url)
    assert not signed_in(refused)
    assert "Too many failed sign-ins" in refused.content.decode()
    # from another address too: the account is locked, not the address
    assert not signed_in(sign_in("carla", "pw-carla", address="10.0.0.2", url=url))


def test_the_lockout_ends_with_its_window(limits):
    from knowledge.security import retry_after

    make_user("carla")
    limits.RAG_LOCKOUT_SECONDS = 3
    time.sleep(retry_after())  # at the start of a window: the attempts below all fall in it
    for _ in range(5):
        sign_in("carla", "guess")
    assert not signed_in(sign_in("carla", "pw-carla"))
    time.sleep(retry_after())
    assert signed_in(sign_in("carla", "pw-carla"))


def test_a_successful_sign_in_clears_the_accounts_failures(limits):
    make_user("carla")
    for _ in range(4):
        sign_in("carla", "guess")
    assert signed_in(sign_in("carla", "pw-carla"))
    for _ in range(4):
        sign_in("carla", "guess")
    assert signed_in(sign_in("carla", "pw-carla"))


def test_one_address_guessing_many_accounts_is_locked_out(limits):
    make_user("dora")
    for n in range(12):
        sign_in(f"user{n}", "guess")
    assert not signed_in(sign_in("dora", "pw-dora"))
    assert signed_in(sign_in("dora", "pw-dora", address="10.0.0.9"))


# --- Bad API tokens -------------------------------------------------------------------------


def test_an_address_sending_bad_tokens_is_throttled(limits):
    user = make_user("erin")
    good = token_client(user)
    good.defaults["REMOTE_ADDR"] = "10.0.0.5"
    assert good.get("/api/v1/knowledge-bases/").status_code == 200
    guesser = APIClient(REMOTE_ADDR="10.0.0.5")
    for n in range(6):
        guesser.credentials(HTTP_AUTHORIZATION=f"Bearer wrong{n}")
        assert guesser.get("/api/v1/knowledge-bases/").status_code == 401
    locked = guesser.get("/api/v1/knowledge-bases/")
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert locked.json()["code"] == "locked_out"
    assert good.get("/api/v1/knowledge-bases/").status_code == 429  # the address is locked
    elsewhere = token_client(user)
    elsewhere.defaults["REMOTE_ADDR"] = "10.0.0.6"
    assert elsewhere.get("/api/v1/knowledge-bases/").status_code == 200


# --- Headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/admin/login/", "/api/v1/knowledge-bases/", "/healthz", "/nope"]
)
def test_every_response_carries_the_security_headers(url):
    response = Client().get(url)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def https_settings(**env: str) -> dict:
    names = "SESSION_COOKIE_SECURE CSRF_COOKIE_SECURE SECURE_SSL_REDIRECT SECURE_HSTS_SECONDS"
    code = (
        "import json; from django.conf import settings as s; "
        f"print(json.dumps([getattr(s, n) for n in {names.split()!r}] + "
        "[s.SECURE_PROXY_SSL_HEADER]))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_setting_switches_on_https():
    assert https_settings(RAG_HTTPS="false") == [False, False, False, 0, None]
    assert https_settings(RAG_HTTPS="true") == [
        True,
        True,
        True,
        31_536_000,
        ["HTTP_X_FORWARDED_PROTO", "https"],
    ]


def test_over_https_the_cookies_are_secure_and_hsts_is_sent(settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    make_user("fay")
    client = Client()
    page = client.get("/accounts/login/", secure=True)
    assert page["Strict-Transport-Security"].startswith("max-age=31536000")
    assert page.cookies["csrftoken"]["secure"]
    response = client.post(
        "/accounts/login/", {"username": "fay", "password": "pw-fay"}, secure=True
    )
    assert response.cookies["sessionid"]["secure"]


# --- API schema and docs ----------------------------------------------------------------------

SCHEMA = {"HTTP_ACCEPT": "application/vnd.oai.openapi+json"}


def test_the_schema_and_docs_need_a_sign_in():
    assert APIClient().get("/api/v1/schema/", **SCHEMA).status_code in (401, 403)
    docs = Client().get("/api/v1/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/accounts/login/")
    user = make_user("gus")
    assert token_client(user).get("/api/v1/schema/", **SCHEMA).status_code == 200
    browser = Client()
    browser.force_login(user)
    assert browser.get("/api/v1/docs/").status_code == 200


def test_a_setting_opens_the_schema_and_docs(settings):
    settings.RAG_API_DOCS_PUBLIC = True
    assert APIClient().get("/api/v1/schema/", **SCHEMA).status_code == 200
    assert Client().get("/api/v1/docs/").status_code == 200


def test_the_docs_page_runs_no_inline_script():
    browser = Client()
    browser.force_login(make_user("hal"))
    html = browser.get("/api/v1/docs/").content.decode()
    assert "<script>" not in html and "?script" in html
