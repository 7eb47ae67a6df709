"""HTML pages: knowledge bases and their documents, uploads, passages and health.

Every page resolves the user's readable knowledge bases first; anything outside them answers
404, exactly like something missing. Changing documents needs a knowledge base the user may
manage (KnowledgeBase.objects.manageable_by: staff members and superusers).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import access, documents, uploads
from .document_errors import translated_error
from .errors import UploadRejectedError
from .forms import MAX_ID, ReplaceForm, UploadForm
from .models import Chunk, Document, KnowledgeBase
from .pages import file_url, page, page_error, wants_json

logger = logging.getLogger(__name__)

logger = logging.getLogger(__name__)


CONTEXT_CHUNKS = 2  # chunks shown before and after a cited one on the passage page


def manageable_document(user, pk: int) -> Document:
    """A document the user may change; 404 if unreadable or missing, 403 if only readable."""
    document = get_object_or_404(
        Document.objects.readable_by(user).select_related("knowledge_base"), pk=pk
    )
    if not Document.objects.manageable_by(user).filter(pk=pk).exists():
        raise PermissionDenied(access.READ_ONLY)
    return document


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
    documents = listed_documents(knowledge_base, query, sort)
    page_obj = Paginator(documents, DOCUMENTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {"document": document, "actions": DOCUMENT_ACTIONS.get(document.state, ("delete",))}
        for document in page_obj
    ]
    may_manage = KnowledgeBase.objects.manageable_by(request.user).filter(pk=pk).exists()
    return render(
        request,
        "knowledge/knowledge_base.html",
        {
            "knowledge_base": knowledge_base,
            "rows": rows,
            "page_obj": page_obj,
            "query": query,
            "sort": sort,
            "columns": sort_links(sort),
            "action_states": ACTION_STATES,
            "total": knowledge_base.documents.count(),
            "may_manage": may_manage,
        },
    )


def listed_documents(knowledge_base: KnowledgeBase, query: str, sort: str):
    """The knowledge base's documents whose file name or title holds query, sorted by sort (a
    DOCUMENT_SORTS key, with "-" for descending)."""
    field = DOCUMENT_SORTS[sort.removeprefix("-")]
    order = f"-{field}" if sort.startswith("-") else field
    documents = knowledge_base.documents.select_related("replaces").order_by(order, "-pk")
    if query:
        documents = documents.filter(Q(original_name__icontains=query) | Q(title__icontains=query))
    return documents


def sort_links(sort: str) -> dict[str, dict[str, str]]:
    """Each column's link sorts by it, or the other way round when it is the current sort."""
    return {
        key: {
            "sort": f"-{key}" if sort == key else key,
            "arrow": "▲" if sort == key else "▼" if sort == f"-{key}" else "",
        }
        for key in DOCUMENT_SORTS
    }


@page
def upload(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the upload page. POST: store each file and queue it; JSON results for scripts,
    otherwise messages and a redirect to the document list."""
    knowledge_base = get_object_or_404(KnowledgeBase.objects.readable_by(request.user), pk=pk)
    if not KnowledgeBase.objects.manageable_by(request.user).filter(pk=pk).exists():
        if wants_json(request):
            return page_error(access.READ_ONLY, 403, results=[])
        raise PermissionDenied(access.READ_ONLY)
    if request.method != "POST":
        return render(
            request,
            "knowledge/upload.html",
            {
                "knowledge_base": knowledge_base,
                "accepted": ",".join(uploads.ACCEPTED_SUFFIXES),
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
            return page_error(error, 400, results=[])
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
    try:
        stored = uploads.store_and_queue(
            knowledge_base, upload.name, upload, user=user, password=password, replaces=replaces
        )
    except UploadRejectedError as error:
        result["error"] = str(error)
        return result
    document = stored.document
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
        return page_error(error % {"limit": MAX_STATUS_IDS}, 400)
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
        return page_error(access.NO_SUCH_DOCUMENT, 404)
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


def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
