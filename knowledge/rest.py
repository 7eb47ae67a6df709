"""DRF plumbing shared by the REST API and the OpenAI-compatible API: authentication, pagination,
throttles, server-sent events and the one exception handler that turns every error into
{"detail", "code"} (or OpenAI's {"error": {...}} on the /v1/ endpoints)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, parsers, renderers
from rest_framework.authentication import TokenAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from generation.errors import GenerationError, GenerationRequestError, GenerationUnavailableError
from retrieval.errors import RetrievalError

from . import access, answering, security
from .conversations import ConversationNotFoundError
from .errors import KnowledgeBaseNotFoundError, LockTimeoutError, UploadRejectedError
from .sse import sse_event
from .uploads import Refusal

logger = logging.getLogger(__name__)

SERVER_ERROR = gettext_lazy(
    "Something went wrong on our side; the error has been logged. Try again later."
)


class LockoutTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`; an address that sent RAG_BAD_TOKENS_PER_ADDRESS bad
    tokens gets 429 until the lockout window ends (knowledge.security), so that keys cannot be
    guessed at the speed of the server."""

    def authenticate(self, request):
        address = security.client_address(request)
        if security.is_locked(security.TOKEN, address):
            wait = security.retry_after()
            raise exceptions.Throttled(
                wait, _("Too many bad tokens from this address; try again later."), "locked_out"
            )
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            security.record_failure(security.TOKEN, address)
            raise


class BearerTokenAuthentication(LockoutTokenAuthentication):
    """`Authorization: Bearer <key>`, the form OpenAI clients send; the same tokens as `Token`."""

    keyword = "Bearer"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The schema's name for BearerTokenAuthentication (drf-spectacular finds it by class)."""

    target_class = "knowledge.rest.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}


class DocsPermission(BasePermission):
    """The API schema and docs: signed-in users only, unless RAG_API_DOCS_PUBLIC."""

    def has_permission(self, request, view) -> bool:
        return settings.RAG_API_DOCS_PUBLIC or bool(request.user and request.user.is_authenticated)


class Pagination(PageNumberPagination):
    """?page=N, and ?page_size=N up to 500 (default: RAG_API_PAGE_SIZE)."""

    page_size_query_param = "page_size"
    max_page_size = 500


class FailOpenThrottle:
    """A throttle that lets requests through, with a logged warning, when its cache (Redis)
    cannot be reached: an outage of the counter must not take the API down."""

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - whatever the cache backend raises
            scope = getattr(self, "scope", "")
            logger.warning(
                "Throttle cache unreachable; %s throttle not applied", scope, exc_info=True
            )
            return True


# Rates come from settings at request time (not at import, as DRF's own classes do), so that
# an empty rate switches a throttle off and tests can change them.
class UserThrottle(FailOpenThrottle, UserRateThrottle):
    def get_rate(self) -> str | None:
        return settings.RAG_API_THROTTLE_USER or None


class AnonThrottle(FailOpenThrottle, AnonRateThrottle):
    def get_rate(self) -> str | None:
        return settings.RAG_API_THROTTLE_ANON or None


class AskThrottle(FailOpenThrottle, UserRateThrottle):
    """The expensive endpoints (answers), counted apart from the user's other requests."""

    scope = "ask"

    def get_rate(self) -> str | None:
        return settings.RAG_API_THROTTLE_ASK or None


# --- Parsing ------------------------------------------------------------------------------------

MAX_JSON_DEPTH = 32  # far more than any of our requests needs


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a body nested deeper than MAX_JSON_DEPTH with a 400 (deep
    enough nesting makes the decoder, or code walking the result later, overflow the stack)."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
        else:
            if json_depth(data) <= MAX_JSON_DEPTH:
                return data
        raise exceptions.ParseError(
            _("The JSON is nested more than %(depth)d levels deep.") % {"depth": MAX_JSON_DEPTH},
            "too_deep",
        )


def json_depth(data: Any) -> int:
    """How deeply lists and objects nest in decoded JSON (a scalar: 0), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                stack.extend((child, depth + 1) for child in children)
    return deepest


# --- Errors -------------------------------------------------------------------------------------


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = gettext_lazy("The request is too large.")
    default_code = "too_large"


class UnsupportedMediaType(exceptions.UnsupportedMediaType):
    """A 415 with our own sentence (DRF's class wants a media type)."""

    def __init__(self, detail: str) -> None:
        exceptions.APIException.__init__(self, detail, "unsupported_type")


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = gettext_lazy("The service is unavailable right now; try again later.")
    default_code = "unavailable"


class IndexBusy(ServiceUnavailable):
    default_detail = gettext_lazy(
        "The knowledge base's index is being updated by another task; try again in a minute."
    )
    default_code = "index_busy"
    wait = LockTimeoutError.retry_after  # DRF's handler sends it as Retry-After


class BadGateway(exceptions.APIException):
    status_code = 502
    default_detail = gettext_lazy("The language model server refused the request.")
    default_code = "llm_error"


def as_api_exception(exc: Exception) -> Exception:
    """Our services' and libraries' errors as the DRF exception with the right status, their
    sentences in the request's language (the libraries' own reasons stay as they wrote them)."""
    if isinstance(exc, KnowledgeBaseNotFoundError):
        return exceptions.NotFound(knowledge_bases_not_found(exc.ids), "not_found")
    if isinstance(exc, ConversationNotFoundError):
        return exceptions.NotFound(_("No such conversation."), "not_found")
    if isinstance(exc, answering.EmptyQuestionError):
        return exceptions.ValidationError({"question": [_("Ask a question: the text is empty.")]})
    if isinstance(exc, Http404):
        return exceptions.NotFound(_("Not found."), "not_found")
    if isinstance(exc, UploadRejectedError):
        return upload_refused(exc)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(_("The request body is too large."))
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError(_("The request could not be read."), "bad_request")
    if isinstance(exc, GenerationUnavailableError):
        return ServiceUnavailable(str(exc), "llm_unavailable")
    if isinstance(exc, GenerationRequestError | GenerationError):
        return BadGateway(str(exc), "llm_error")
    if isinstance(exc, RetrievalError):
        return ServiceUnavailable(str(exc), "retrieval_unavailable")
    if isinstance(exc, LockTimeoutError):
        return IndexBusy()
    return exc


def knowledge_bases_not_found(ids: list[int]) -> str:
    if not ids:
        return str(access.NO_SUCH_KNOWLEDGE_BASE)
    return _("No such knowledge base: %(ids)s.") % {"ids": ", ".join(map(str, ids))}


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    """{"detail": one sentence, "code": stable code} (+ "errors" per field for invalid input)."""
    detail, codes = exc.detail, exc.get_codes()
    if isinstance(detail, dict | list):
        errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        return {
            "detail": _("Invalid request: %(message)s") % {"message": _first_message(errors)},
            "code": "upload_rejected" if _has_code(codes, "upload_rejected") else "invalid",
            "errors": errors,
        }
    return {"detail": str(detail), "code": str(codes)}


def _first_message(errors: Any, field: str = "") -> str:
    if isinstance(errors, dict):
        name, value = next(iter(errors.items()), ("", ""))
        label = name if not field else f"{field}.{name}"
        return _first_message(value, "" if name == "non_field_errors" else label)
    if isinstance(errors, list) and errors:
        return _first_message(errors[0], field)
    return f"{field}: {errors}" if field else str(errors)


def _has_code(codes: Any, code: str) -> bool:
    if isinstance(codes, dict):
        return any(_has_code(value, code) for value in codes.values())
    if isinstance(codes, list):
        return any(_has_code(value, code) for value in codes)
    return codes == code


def describe_error(exc: Exception) -> tuple[int, dict[str, Any]]:
    """Status and body for any exception; unexpected ones are logged and described vaguely."""
    exc = as_api_exception(exc)
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, error_body(exc)
    logger.error("Unexpected error in an API request", exc_info=exc)
    return 500, {"detail": str(SERVER_ERROR), "code": "server_error"}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The one place where API errors become responses (REST_FRAMEWORK's EXCEPTION_HANDLER)."""
    # rest_framework.views imports this module (through the settings) while it loads.
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    exc = as_api_exception(exc)
    response = drf_exception_handler(exc, context)  # keeps DRF's headers: Retry-After, ...
    if response is None:
        status, body = describe_error(exc)
        set_rollback()
        response = Response(body, status=status)
    else:
        response.data = error_body(exc)  # type: ignore[arg-type]
    if getattr(context.get("view"), "openai_errors", False):
        response.data = openai_error(response.status_code, response.data)
    return response


def openai_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's error shape, for clients of /v1/."""
    kinds = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": body["detail"], "type": kind, "param": None, "code": body["code"]}}


# --- Server-sent events -------------------------------------------------------------------------


class EventStreamRenderer(renderers.BaseRenderer):
    """text/event-stream. Streams are sent as StreamingHttpResponse; this renders the rest (an
    error before the stream started, or an answer asked for without streaming) as one event."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        response = (renderer_context or {}).get("response")
        failed = response is not None and response.status_code >= 400
        return sse_event("error" if failed else "done", data).encode()


def guarded(events: Iterator[str], on_error) -> Iterator[str]:
    """Pass events on; an error once the stream has begun (its status already sent) becomes a
    last event made by on_error(status, body)."""
    try:
        yield from events
    except Exception as exc:  # noqa: BLE001 - the client must hear why the stream ended
        yield on_error(*describe_error(exc))


class IgnoreClientContentNegotiation(BaseContentNegotiation):
    """For file downloads: the client's Accept header must not turn a file into a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def upload_refused(exc: UploadRejectedError) -> exceptions.APIException:
    """The API's status for each kind of refused upload (knowledge.uploads.Refusal)."""
    if exc.kind == Refusal.TOO_LARGE:
        return PayloadTooLarge(str(exc))
    if exc.kind in (Refusal.WRONG_TYPE, Refusal.WRONG_CONTENT):
        return UnsupportedMediaType(str(exc))
    return exceptions.ValidationError({"file": [str(exc)]}, "upload_rejected")
