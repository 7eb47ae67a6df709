"""HTML pages: knowledge bases and their documents, uploads, the chat and its answer stream.

Every page resolves the user's readable knowledge bases first; anything outside them answers
404, exactly like something missing. Changing documents needs a knowledge base the user may
manage (KnowledgeBase.objects.manageable_by: staff members and superusers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from . import access, answering, dispatch, documents, uploads
from .document_errors import translated_error
from .errors import KnowledgeBaseNotFoundError, UploadRejectedError
from .forms import (
    ACCEPTED_SUFFIXES,
    MAX_ID,
    AskForm,
    FeedbackForm,
    ReplaceForm,
    UploadForm,
    upload_problem,
)
from .markdown import render_markdown, render_passage
from .models import Chunk, Conversation, Document, Feedback, KnowledgeBase, Message
from .sse import in_language, sse_event

logger = logging.getLogger(__name__)

READ_ONLY = gettext_lazy("You may read this knowledge base but not change its documents.")
HIDDEN_ANSWER = gettext_lazy("This answer is hidden: it quotes sources you can no longer read.")
CONTEXT_CHUNKS = 2  # chunks shown before and after a cited one on the passage page


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a login_required view, whose user is signed in (for the type checker)."""

    user: User


def page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A logged-in HTML page (knowledge.security adds the content security policy to every
    response)."""
    return login_required(view)


def manageable_document(user, pk: int) -> Document:
    """A document the user may change; 404 if unreadable or missing, 403 if only readable."""
    document = get_object_or_404(
        Document.objects.readable_by(user).select_related("knowledge_base"), pk=pk
    )
    if not Document.objects.manageable_by(user).filter(pk=pk).exists():
        raise PermissionDenied(READ_ONLY)
    return document


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


# --- Knowledge bases and documents --------------------------------------------------------------


@page
def home(request: HttpRequest) -> HttpResponse:
    knowledge_bases = KnowledgeBase.objects.readable_by(request.user).prefetch_related("documents")
    manageable = set(KnowledgeBase.objects.manageable_by(request.user).values_list("pk", flat=True))
    return render(
        request,
        "knowledge/home.html",
        {"knowledge_bases": knowledge_bases, "manageable": manageable},
    )


# The document list's columns that sort (?sort=name, ?sort=-name for descending).
DOCUMENT_SORTS = {
    "name": "original_name",
    "title": "title",
    "type": "file_type",
    "state": "state",
    "pages": "page_count",
    "chunks": "chunk_count",
    "added": "created_at",
}
DOCUMENTS_PER_PAGE = 50
# What may be done to a document in each state; anything else is refused.
DOCUMENT_ACTIONS: dict[str, tuple[str, ...]] = {
    Document.State.QUEUED: ("delete",),
    Document.State.PROCESSING: ("delete",),
    Document.State.INDEXED: ("disable", "reindex", "replace", "delete"),
    Document.State.FAILED: ("reindex", "replace", "delete"),
    Document.State.DISABLED: ("enable", "delete"),
}
# The same, the other way round, for the page's script as a row changes state.
ACTION_STATES = {
    action: " ".join(state for state, actions in DOCUMENT_ACTIONS.items() if action in actions)
    for action in ("enable", "disable", "reindex", "replace", "delete")
}


@page
def knowledge_base_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The document list: searched by file name or title (?q=), sorted (?sort=), in pages."""
    # A knowledge base the user may not read answers 404, exactly like a missing one.
    knowledge_base = get_object_or_404(KnowledgeBase.objects.readable_by(request.user), pk=pk)
    query = request.GET.get("q", "").strip()[:200]
    sort = request.GET.get("sort", "")
    if sort.removeprefix("-") not in DOCUMENT_SORTS:
        sort = "-added"
    field = DOCUMENT_SORTS[sort.removeprefix("-")]
    order = f"-{field}" if sort.startswith("-") else field
    documents = knowledge_base.documents.select_related("replaces").order_by(order, "-pk")
    if query:
        documents = documents.filter(Q(original_name__icontains=query) | Q(title__icontains=query))
    page_obj = Paginator(documents, DOCUMENTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {"document": document, "actions": DOCUMENT_ACTIONS.get(document.state, ("delete",))}
        for document in page_obj
    ]
    may_manage = KnowledgeBase.objects.manageable_by(request.user).filter(pk=pk).exists()
    # Each column's link sorts by it, or the other way round when it is the current sort.
    columns = {
        key: {
            "sort": f"-{key}" if sort == key else key,
            "arrow": "▲" if sort == key else "▼" if sort == f"-{key}" else "",
        }
        for key in DOCUMENT_SORTS
    }
    return render(
        request,
        "knowledge/knowledge_base.html",
        {
            "knowledge_base": knowledge_base,
            "rows": rows,
            "page_obj": page_obj,
            "query": query,
            "sort": sort,
            "columns": columns,
            "action_states": ACTION_STATES,
            "total": knowledge_base.documents.count(),
            "may_manage": may_manage,
        },
    )


@page
def upload(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the upload page. POST: store each file and queue it; JSON results for scripts,
    otherwise messages and a redirect to the document list."""
    knowledge_base = get_object_or_404(KnowledgeBase.objects.readable_by(request.user), pk=pk)
    if not KnowledgeBase.objects.manageable_by(request.user).filter(pk=pk).exists():
        if wants_json(request):
            return JsonResponse({"results": [], "error": str(READ_ONLY)}, status=403)
        raise PermissionDenied(READ_ONLY)
    if request.method != "POST":
        return render(
            request,
            "knowledge/upload.html",
            {
                "knowledge_base": knowledge_base,
                "accepted": ",".join(ACCEPTED_SUFFIXES),
                "max_upload_mb": settings.RAG_MAX_UPLOAD_MB,
                "max_upload_bytes": settings.RAG_MAX_UPLOAD_MB * 1024 * 1024,
            },
        )
    return receive_uploads(request, knowledge_base)


def receive_uploads(request: HttpRequest, knowledge_base: KnowledgeBase) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        error = " ".join(map(str, form.errors.get("file", []))) or _("The upload is not valid.")
        if wants_json(request):
            return JsonResponse({"results": [], "error": error}, status=400)
        messages.error(request, error)
        return redirect("knowledge:upload", pk=knowledge_base.pk)
    results = [
        store_upload(knowledge_base, upload, request.user, form.cleaned_data["password"])
        for upload in form.cleaned_data["file"]
    ]
    if wants_json(request):
        status = 400 if all(result["error"] for result in results) else 200
        return JsonResponse({"results": results}, status=status)
    for result in results:
        level = messages.error if result["error"] else messages.success
        level(request, result["error"] or result["message"])
    return redirect("knowledge:knowledge_base", pk=knowledge_base.pk)


def store_upload(knowledge_base: KnowledgeBase, upload, user, password: str = "", replaces=None):
    """Store one uploaded file and queue its ingestion; a dict that says what happened."""
    result: dict = {"name": upload.name, "error": None, "message": "", "document": None}
    if problem := upload_problem(upload):
        result["error"] = problem
        return result
    try:
        stored = uploads.add_document(
            knowledge_base, upload.name, upload, user=user, password=password, replaces=replaces
        )
    except UploadRejectedError as error:
        result["error"] = str(error)
        return result
    document = stored.document
    if document.state == Document.State.QUEUED:
        dispatch.enqueue_ingestion(document)
    if stored.created:
        result["message"] = _("%(name)s is queued for indexing.") % {"name": upload.name}
    else:
        result["message"] = _("%(name)s is already in this knowledge base as %(document)s.") % {
            "name": upload.name,
            "document": document,
        }
    result["duplicate"] = not stored.created
    result["document"] = document_status(document)
    return result


def document_status(document: Document) -> dict:
    return {
        "id": document.pk,
        "title": str(document),
        "state": document.state,
        "state_label": document.get_state_display(),
        "progress": document.progress,
        "error": translated_error(document.error),
        "page_count": document.page_count,
        "chunk_count": document.chunk_count,
        "status_url": reverse("knowledge:document_status", args=[document.pk]),
        "list_url": reverse("knowledge:knowledge_base", args=[document.knowledge_base_id]),
    }


MAX_STATUS_IDS = 500


@login_required
def documents_status_json(request: HttpRequest) -> JsonResponse:
    """The state of several documents at once (?ids=1,2,3), for the upload page and the document
    list: one request for all the files a page follows, however many. Ids the user may not read
    are left out, exactly like missing ones."""
    ids = [int(item) for item in request.GET.get("ids", "").split(",") if item.isdigit()]
    if not ids or len(ids) > MAX_STATUS_IDS:
        error = _("Give between 1 and %(limit)d document ids, separated by commas.")
        return JsonResponse({"error": error % {"limit": MAX_STATUS_IDS}}, status=400)
    found = Document.objects.readable_by(request.user).filter(
        pk__in=[i for i in ids if i <= MAX_ID]
    )
    response = JsonResponse({"documents": [document_status(document) for document in found]})
    response["Cache-Control"] = "no-store"
    return response


@login_required
def document_status_json(request: HttpRequest, pk: int) -> JsonResponse:
    """State, progress and error of one document, polled by the upload and document pages."""
    document = Document.objects.readable_by(request.user).filter(pk=pk).first()
    if document is None:
        return JsonResponse({"error": _("No such document.")}, status=404)
    response = JsonResponse(document_status(document))
    response["Cache-Control"] = "no-store"
    return response


@login_required
def document_file(request: HttpRequest, pk: int) -> FileResponse:
    """The stored file, to members only. PDFs open in the browser (at #page=N); every other
    type downloads, so that an uploaded HTML file can never run in this site."""
    document = get_object_or_404(Document.objects.readable_by(request.user), pk=pk)
    try:
        handle = document.file.open("rb")
    except (OSError, ValueError):
        raise Http404(_("The stored file is missing.")) from None
    is_pdf = document.file_type == "pdf" or (
        not document.file_type and document.original_name.lower().endswith(".pdf")
    )
    response = FileResponse(
        handle,
        as_attachment=not is_pdf,
        filename=document.original_name,
        content_type="application/pdf" if is_pdf else "application/octet-stream",
    )
    if not is_pdf:
        response["Content-Security-Policy"] = "sandbox"
    response["Cache-Control"] = "private, no-cache"
    return response


@page
def passage(request: HttpRequest, pk: int) -> HttpResponse:
    """A cited chunk in its context: the chunks around it, and a link to the file."""
    readable = KnowledgeBase.objects.readable_by(request.user)
    chunk = get_object_or_404(
        Chunk.objects.filter(knowledge_base__in=readable).select_related("document"), pk=pk
    )
    around = chunk.document.chunks.filter(
        order__gte=chunk.order - CONTEXT_CHUNKS, order__lte=chunk.order + CONTEXT_CHUNKS
    ).only("pk", "text", "page", "order")
    return render(
        request,
        "knowledge/passage.html",
        {
            "chunk": chunk,
            "document": chunk.document,
            "context_chunks": around,
            "file_url": file_url(chunk.document, chunk.page),
        },
    )


def file_url(document: Document, page_number: int | None) -> str:
    url = reverse("knowledge:document_file", args=[document.pk])
    return f"{url}#page={page_number}" if document.file_type == "pdf" and page_number else url


@require_POST
@login_required
def document_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Disable, enable, re-index or delete a document from the document list."""
    document = manageable_document(request.user, pk)
    names, knowledge_base_id = {"name": str(document)}, document.knowledge_base_id
    if action not in DOCUMENT_ACTIONS.get(document.state, ()):
        refused = _("%(name)s is %(state)s: that cannot be done to it now.")
        messages.error(request, refused % {**names, "state": document.get_state_display()})
        return redirect("knowledge:knowledge_base", pk=knowledge_base_id)
    if action == "disable":
        documents.set_document_enabled(document, False)
        messages.success(request, _("%(name)s is disabled: answers no longer use it.") % names)
    elif action == "enable":
        documents.set_document_enabled(document, True)
        messages.success(request, _("%(name)s is enabled again.") % names)
    elif action == "reindex":
        documents.queue_reindex(document)
        messages.success(request, _("%(name)s is queued for indexing again.") % names)
    elif action == "delete":
        documents.delete_document(document)
        messages.success(request, _("%(name)s is deleted.") % names)
    else:
        raise Http404(_("No such action."))
    return redirect("knowledge:knowledge_base", pk=knowledge_base_id)


@require_POST
@login_required
def document_replace(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload a file that replaces the document once the new one is indexed."""
    document = manageable_document(request.user, pk)
    form = ReplaceForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, " ".join(map(str, form.errors["file"])))
    else:
        result = store_upload(
            document.knowledge_base, form.cleaned_data["file"], request.user, replaces=document
        )
        if result["error"]:
            messages.error(request, result["error"])
        elif result["duplicate"]:
            messages.warning(request, result["message"])
        else:
            replacing = _("%(name)s will replace %(document)s once it is indexed.")
            messages.success(request, replacing % {"name": result["name"], "document": document})
    return redirect("knowledge:knowledge_base", pk=document.knowledge_base_id)


# --- Chat ---------------------------------------------------------------------------------------


@page
def chat(request: AuthenticatedHttpRequest, pk: int | None = None) -> HttpResponse:
    """The chat page: a new conversation, or one of the user's own (404 for any other)."""
    conversation = None
    if pk is not None:
        conversation = get_object_or_404(Conversation.objects.filter(user=request.user), pk=pk)
    knowledge_bases = access.readable_knowledge_bases(request.user)
    readable_ids = {kb.pk for kb in knowledge_bases}
    if conversation:
        selected = set(conversation.knowledge_bases.values_list("pk", flat=True)) & readable_ids
    elif request.GET.get("kb", "").isdigit():
        selected = {int(request.GET["kb"])} & readable_ids
    else:
        selected = readable_ids
    return render(
        request,
        "knowledge/chat.html",
        {
            "conversation": conversation,
            "conversations": Conversation.objects.filter(
                user=request.user, source=Conversation.Source.CHAT
            )[:50],
            "knowledge_bases": knowledge_bases,
            "selected": selected,
            "turns": conversation_turns(conversation, request.user) if conversation else [],
        },
    )


def conversation_turns(conversation: Conversation, user) -> list[dict]:
    """The conversation's messages as the page shows them, answers rendered as safe HTML."""
    turns = []
    feedback = {item.message_id: item for item in conversation_feedback(conversation, user)}
    hidden = access.answers_hidden_from(user, conversation)
    for message in conversation.messages.all():
        turn = {"message": message, "feedback": feedback.get(message.pk)}
        if message.pk in hidden:
            turn["citations"] = []
            turn["html"] = format_html('<p class="muted">{}</p>', HIDDEN_ANSWER)
        elif message.role == Message.Role.ASSISTANT:
            citations = citations_with_urls(message.citations or [], user)
            turn["citations"] = citations
            turn["html"] = render_markdown(message.text, answer_links(citations))
        turns.append(turn)
    return turns


def conversation_feedback(conversation: Conversation, user):
    return Feedback.objects.filter(message__conversation=conversation, user=user)


def answer_links(citations: Iterable[dict]) -> dict[int, str]:
    return {citation["n"]: citation["url"] for citation in citations if citation.get("url")}


def citations_with_urls(citations: list[dict], user) -> list[dict]:
    """Add to each citation (or passage) the link to its source: the PDF at its page, or the
    passage page. Sources the user can no longer read are dropped."""
    ids = {citation.get("document_id") for citation in citations}
    types = dict(
        Document.objects.readable_by(user).filter(pk__in=ids).values_list("pk", "file_type")
    )
    shown = []
    for citation in citations:
        if citation.get("document_id") not in types:
            continue
        document_url = reverse("knowledge:document_file", args=[citation["document_id"]])
        page_number = citation.get("page")
        if types[citation["document_id"]] == "pdf" and page_number:
            url = f"{document_url}#page={page_number}"
        else:
            url = reverse("knowledge:passage", args=[citation["chunk_id"]])
        shown.append({**citation, "url": url, "html": render_passage(citation.get("text") or "")})
    return shown


@require_POST
@login_required
def answer_stream(request: AuthenticatedHttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Answer a question as server-sent events: sources, deltas, then done (or error)."""
    form = AskForm(request.POST)
    if not form.is_valid():
        errors = [str(error) for field in form.errors.values() for error in field]
        return JsonResponse({"error": " ".join(errors)}, status=400)
    data = form.cleaned_data
    try:
        knowledge_bases = access.readable_knowledge_bases(request.user, data["knowledge_bases"])
    except KnowledgeBaseNotFoundError:
        return JsonResponse({"error": _("No such knowledge base.")}, status=404)
    conversation = None
    if data["conversation"]:
        conversation = Conversation.objects.filter(
            user=request.user, pk=data["conversation"]
        ).first()
        if conversation is None:
            return JsonResponse({"error": _("No such conversation.")}, status=404)
        if data["regenerate"]:
            forget_last_turn(conversation)
    events = answering.stream_answer(
        data["question"], knowledge_bases, user=request.user, conversation=conversation
    )
    response = StreamingHttpResponse(
        in_language(translation.get_language(), chat_events(events, request.user)),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def forget_last_turn(conversation: Conversation) -> None:
    """Before a regenerated answer: drop the last question and its answer, which the new
    stream asks and answers again."""
    last_question = conversation.messages.filter(role=Message.Role.USER).order_by("-pk").first()
    if last_question:
        conversation.messages.filter(pk__gte=last_question.pk).delete()


def chat_events(events: Iterable, user) -> Iterator[str]:
    """Server-sent events from answering.stream_answer events, with links to the sources and
    the finished answer rendered as safe HTML."""
    try:
        for event in events:
            data = dict(event.data)
            if event.kind == "sources":
                data["passages"] = citations_with_urls(data.get("passages", []), user)
            elif event.kind == "done":
                data = finished_answer(data, user)
            yield sse_event(event.kind, data)
    except Exception:
        # The response has started, so the error goes to the page as an event.
        logger.exception("The answer stream failed")
        message = _("The answer could not be completed. Try again in a moment.")
        yield sse_event("error", {"message": message})


def finished_answer(data: dict, user) -> dict:
    citations = citations_with_urls(data.get("citations", []), user)
    return {
        **data,
        "citations": citations,
        "passages": citations_with_urls(data.get("passages", []), user),
        "html": render_markdown(data.get("answer", ""), answer_links(citations)),
    }


@require_POST
@login_required
def feedback(request: AuthenticatedHttpRequest, pk: int) -> JsonResponse:
    """Thumbs up or down, with an optional comment, on one of the user's own answers."""
    message = Message.objects.filter(
        pk=pk, conversation__user=request.user, role=Message.Role.ASSISTANT
    ).first()
    if message is None:
        return JsonResponse({"error": _("No such answer.")}, status=404)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        errors = [str(error) for field in form.errors.values() for error in field]
        return JsonResponse({"error": " ".join(errors)}, status=400)
    answering.record_feedback(
        message, request.user, form.cleaned_data["rating"], form.cleaned_data["comment"]
    )
    return JsonResponse({"rating": form.cleaned_data["rating"], "saved": True})


@require_POST
@login_required
def conversation_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(Conversation.objects.filter(user=request.user), pk=pk)
    conversation.delete()
    messages.success(request, _("The conversation is deleted."))
    return redirect("knowledge:chat")


def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
