"""Page answers to errors that views leave to one place."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from .errors import LockTimeoutError


class IndexBusyMiddleware:
    """A page whose request waited too long for a knowledge base's lock (only where tasks run in
    the web process, RAG_CELERY_EAGER) answers 503 with Retry-After and says to try again,
    instead of a server error. The API answers the same through rest.exception_handler."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, LockTimeoutError):
            return None
        response = HttpResponse(render_to_string("503.html", request=request), status=503)
        response["Retry-After"] = str(LockTimeoutError.retry_after)
        return response
