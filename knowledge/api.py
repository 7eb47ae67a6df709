"""REST endpoints under /api/v1/. They call the same services as the pages.

Access control: every lookup starts from the caller's readable knowledge bases, so a knowledge
base (or one of its documents) the caller may not read answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, QuerySet
from django.http import FileResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from . import access, answering, conversations, documents, search, uploads
from . import serializers as s
from .errors import KnowledgeBaseNotFoundError
from .models import Conversation, Document, KnowledgeBase
from .rest import (
    AskThrottle,
    EventStreamRenderer,
    IgnoreClientContentNegotiation,
    PayloadTooLarge,
    guarded,
)
from .sse import event_stream, sse_event

ERRORS = {
    code: OpenApiResponse(s.ErrorSerializer, description=text)
    for code, text in [
        (400, "Invalid request"),
        (401, "No or wrong token"),
        (403, "Not allowed"),
        (404, "Not found, or not readable by the caller"),
        (413, "File too large"),
        (415, "File type not accepted"),
    ]
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in (400, 401, *codes)}


def readable_knowledge_base(user, pk: int) -> KnowledgeBase:
    if pk > s.MAX_ID:  # no such row, and the database would refuse the number
        raise KnowledgeBaseNotFoundError([pk])
    return access.readable_knowledge_bases(user, [pk])[0]


def readable_document(user, pk: int) -> Document:
    documents = Document.objects.readable_by(user).select_related("knowledge_base")
    document = documents.filter(pk=pk).first() if pk <= s.MAX_ID else None
    if document is None:
        raise exceptions.NotFound(access.NO_SUCH_DOCUMENT, "not_found")
    return document


def may_create_knowledge_bases(user) -> bool:
    return user.is_staff or user.has_perm("knowledge.add_knowledgebase")


def check_manageable(user, knowledge_base: KnowledgeBase) -> None:
    """Uploading and deleting follow the pages' rule (KnowledgeBase.objects.manageable_by)."""
    if not KnowledgeBase.objects.manageable_by(user).filter(pk=knowledge_base.pk).exists():
        raise exceptions.PermissionDenied(access.READ_ONLY)


# --- Knowledge bases ------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="Knowledge bases you may read",
        responses={200: s.KnowledgeBaseSerializer(many=True), **errors()},
    ),
    post=extend_schema(
        summary="Create a knowledge base (staff, or the add_knowledgebase permission)",
        responses={201: s.KnowledgeBaseSerializer, **errors(403)},
    ),
)
class KnowledgeBaseList(generics.ListCreateAPIView):
    serializer_class = s.KnowledgeBaseSerializer

    def get_queryset(self) -> QuerySet[KnowledgeBase]:
        readable = KnowledgeBase.objects.readable_by(self.request.user)
        return readable.annotate(document_count=Count("documents", distinct=True)).order_by("name")

    def perform_create(self, serializer: BaseSerializer[KnowledgeBase]) -> None:
        if not may_create_knowledge_bases(self.request.user):
            raise exceptions.PermissionDenied(_("Only administrators may create knowledge bases."))
        knowledge_base = serializer.save()
        # The creator can read what it made (IsAuthenticated: the user is signed in).
        knowledge_base.members.add(cast(User, self.request.user))


# --- Documents ------------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="Documents of a knowledge base",
        responses={200: s.DocumentSerializer(many=True), **errors(404)},
    ),
    post=extend_schema(
        summary="Upload a document (multipart `file`, optional `password`)",
        description="Answers 201 with the new document, queued for ingestion, or 200 with the "
        "document already holding the same content. Needs staff status (and membership).",
        request={"multipart/form-data": s.DocumentUploadSerializer},
        responses={
            201: s.DocumentSerializer,
            200: s.DocumentSerializer,
            **errors(403, 404, 413, 415),
        },
    ),
)
class DocumentList(generics.ListAPIView):
    serializer_class = s.DocumentSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[Document]:
        knowledge_base = readable_knowledge_base(self.request.user, self.kwargs["pk"])
        return knowledge_base.documents.order_by("-created_at", "-pk")

    def post(self, request: Request, pk: int) -> Response:
        knowledge_base = readable_knowledge_base(request.user, pk)
        check_manageable(request.user, knowledge_base)
        limit = settings.RAG_MAX_UPLOAD_MB * 1024 * 1024
        # Refuse an oversized body before reading it (a little room for the multipart framing).
        if content_length(request) > limit + 64 * 1024:
            raise PayloadTooLarge(uploads.too_large())
        upload = s.DocumentUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file, password = upload.validated_data["file"], upload.validated_data.get("password", "")
        result = uploads.store_and_queue(
            knowledge_base, file.name, file, user=request.user, password=password
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        body = s.DocumentSerializer(result.document).data
        return Response(body, status=code, headers={"Location": f"/api/v1/documents/{body['id']}/"})


def content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


@extend_schema_view(
    get=extend_schema(
        summary="A document: status, progress, error, pages, chunks",
        responses={200: s.DocumentSerializer, **errors(404)},
    ),
    delete=extend_schema(
        summary="Delete a document, its chunks and its file (staff members only)",
        responses={204: None, **errors(403, 404)},
    ),
)
class DocumentDetail(generics.RetrieveDestroyAPIView):
    serializer_class = s.DocumentSerializer

    def get_object(self) -> Document:
        return readable_document(self.request.user, self.kwargs["pk"])

    def perform_destroy(self, document: Document) -> None:
        check_manageable(self.request.user, document.knowledge_base)
        documents.delete_document(document)


class DocumentFile(APIView):
    content_negotiation_class = IgnoreClientContentNegotiation

    @extend_schema(
        summary="Download the document's original file",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **errors(404)},
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        document = readable_document(request.user, pk)
        try:
            handle = document.file.open("rb")
        except OSError:
            raise exceptions.NotFound(_("The document's file is missing."), "file_missing")
        return FileResponse(handle, as_attachment=True, filename=document.original_name)


# --- Search and answers ---------------------------------------------------------------------------


def requested_knowledge_bases(user, ids: list[int] | None) -> list[KnowledgeBase]:
    """The ones asked for, or with none named every readable one."""
    return access.readable_knowledge_bases(user, ids or None)


class SearchView(APIView):
    @extend_schema(
        summary="Ranked passages for a query (retrieval only, no answer)",
        request=s.SearchSerializer,
        responses={200: s.SearchResponseSerializer, **errors(404)},
    )
    def post(self, request: Request) -> Response:
        query = s.SearchSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        knowledge_bases = requested_knowledge_bases(request.user, data.get("knowledge_bases"))
        passages = search.search_passages(
            knowledge_bases, data["query"], top_k=data["top_k"], user=request.user
        )
        results = {"query": data["query"], "results": search.ranked(passages)}
        return Response(s.SearchResponseSerializer(results).data)


class AskView(APIView):
    renderer_classes = [JSONRenderer, EventStreamRenderer]
    throttle_classes = [*APIView.throttle_classes, AskThrottle]

    @extend_schema(
        summary="Answer a question with citations",
        description='With "stream": true the answer comes as server-sent events: `sources` '
        "(the numbered passages), `delta` (answer text, many), then `done` (the object below); "
        "`error` ({detail, code}) if it fails midway.",
        request=s.AskSerializer,
        responses={
            (200, "application/json"): s.AskResponseSerializer,
            (200, "text/event-stream"): s.ServerSentEventSerializer,
            **errors(404),
        },
    )
    def post(self, request: Request):
        ask = s.AskSerializer(data=request.data)
        ask.is_valid(raise_exception=True)
        data = ask.validated_data
        knowledge_bases = requested_knowledge_bases(request.user, data.get("knowledge_bases"))
        kwargs = {
            "user": request.user,
            "conversation": api_conversation(
                request.user, data.get("conversation"), data["question"]
            ),
            "top_k": data.get("top_k"),
        }
        if not data["stream"]:
            answer = answering.answer_question(data["question"], knowledge_bases, **kwargs)
            return Response(s.AskResponseSerializer(answer).data)
        events = answering.stream_answer(data["question"], knowledge_bases, **kwargs)
        return event_stream(
            guarded(
                (sse_event(event.kind, s.answer_event_body(event)) for event in events),
                on_error=lambda status, body: sse_event("error", body),
            )
        )


def api_conversation(user, pk: int | None, question: str) -> Conversation:
    """The caller's conversation to continue (ConversationNotFoundError answers 404), or a new
    one marked as the API's (kept out of the chat page's list)."""
    if pk is None:
        return conversations.start_conversation(user, question, source=Conversation.Source.API)
    return conversations.own_conversation(user, pk)
