"""Security that applies to every request: response headers, and lockouts after repeated failed
sign-ins (per account and per address) and bad API tokens (per address).

Failures are counted in Django's cache, shared by every web process, in fixed windows of
RAG_LOCKOUT_SECONDS. When the cache cannot be reached, nothing is locked (the failure is
logged): a cache outage must not lock everybody out.
"""

from __future__ import annotations

import logging
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import user_logged_in, user_login_failed
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

# Scripts and styles from this site only; answers are sanitised anyway, and this stops anything
# that slipped through from running. Pages, the admin, the API docs and the API's JSON alike.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


class SecurityHeadersMiddleware:
    """The content security policy and permissions policy on every response (a view may set a
    stricter policy of its own, as the raw file view does). Django's SecurityMiddleware adds
    nosniff, the referrer policy, the opener policy and, with RAG_HTTPS, HSTS."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


# --- Counting failures --------------------------------------------------------------------------

ACCOUNT, ADDRESS, TOKEN = "login-account", "login-address", "bad-token"


def client_address(request) -> str:
    """The connecting address (REMOTE_ADDR). Not X-Forwarded-For, which any client can write;
    behind a reverse proxy, have the proxy set REMOTE_ADDR (e.g. gunicorn --forwarded-allow-ips
    with a proxy protocol) or every client shares the proxy's address."""
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def _limit(kind: str) -> int:
    return {
        ACCOUNT: settings.RAG_LOGIN_FAILURES_PER_ACCOUNT,
        ADDRESS: settings.RAG_LOGIN_FAILURES_PER_ADDRESS,
        TOKEN: settings.RAG_BAD_TOKENS_PER_ADDRESS,
    }[kind]


def _key(kind: str, ident: str) -> str:
    window = int(time.time() // settings.RAG_LOCKOUT_SECONDS)
    return f"lockout:{kind}:{window}:{ident.lower()}"[:240]


def record_failure(kind: str, ident: str) -> None:
    if not ident or not _limit(kind):
        return
    key, timeout = _key(kind, ident), settings.RAG_LOCKOUT_SECONDS
    try:
        cache.add(key, 0, timeout)
        cache.incr(key)
        cache.touch(key, timeout)  # incr keeps no timeout on every backend
    except Exception:  # noqa: BLE001 - counting must never break a sign-in
        logger.warning("Cannot count a failed %s in the cache; not throttled", kind, exc_info=True)


def is_locked(kind: str, ident: str) -> bool:
    limit = _limit(kind)
    if not ident or not limit:
        return False
    try:
        return (cache.get(_key(kind, ident)) or 0) >= limit
    except Exception:  # noqa: BLE001 - fail open: an outage must not lock everybody out
        logger.warning(
            "Cannot read the %s lockout from the cache; not throttled", kind, exc_info=True
        )
        return False


def retry_after() -> int:
    """Seconds until the current window ends and the counts start again."""
    window = settings.RAG_LOCKOUT_SECONDS
    return int(window - time.time() % window) + 1


def login_locked(request, username: str | None) -> bool:
    return is_locked(ACCOUNT, username or "") or is_locked(ADDRESS, client_address(request))


@receiver(user_login_failed)
def count_failed_login(sender, credentials, request=None, **kwargs) -> None:
    record_failure(ACCOUNT, credentials.get("username") or "")
    record_failure(ADDRESS, client_address(request))


@receiver(user_logged_in)
def forget_failed_logins(sender, request, user, **kwargs) -> None:
    try:
        cache.delete(_key(ACCOUNT, user.get_username()))
    except Exception:  # noqa: BLE001
        logger.warning("Cannot reset the sign-in failures of %s", user.pk, exc_info=True)


class LockoutModelBackend(ModelBackend):
    """Django's backend, refusing every password while the account or the address is locked
    out (PermissionDenied stops authenticate() from asking other backends)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and login_locked(request, username):
            raise PermissionDenied
        return super().authenticate(request, username=username, password=password, **kwargs)


LOCKED_MESSAGE = _(
    "Too many failed sign-ins for this account or from this address. Try again in %(minutes)d "
    "minutes."
)


class LockoutFormMixin:
    """Says why a locked-out sign-in fails, instead of "wrong password"."""

    def clean(self):
        if login_locked(self.request, self.data.get("username")):  # type: ignore[attr-defined]
            raise forms.ValidationError(
                LOCKED_MESSAGE, code="locked", params={"minutes": -(-retry_after() // 60)}
            )
        return super().clean()  # type: ignore[misc]


class LoginForm(LockoutFormMixin, AuthenticationForm):
    pass


class AdminLoginForm(LockoutFormMixin, AdminAuthenticationForm):
    pass
