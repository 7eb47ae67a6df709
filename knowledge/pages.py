"""What every HTML page shares: the signed-in request type, the page decorator, JSON
negotiation and links to a document's file."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from .models import Document


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a login_required view, whose user is signed in (for the type checker)."""

    user: User


def page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A logged-in HTML page (knowledge.security adds the content security policy to every
    response)."""
    return login_required(view)


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def file_url(document: Document, page_number: int | None) -> str:
    url = reverse("knowledge:document_file", args=[document.pk])
    return f"{url}#page={page_number}" if document.file_type == "pdf" and page_number else url


def page_error(message: object, status: int, **extra: object) -> JsonResponse:
    """The JSON answer of a page's script request that failed: {"error": message} and any
    extra fields, with the HTTP status (a page's scripts show the message as it is)."""
    return JsonResponse({"error": str(message), **extra}, status=status)
