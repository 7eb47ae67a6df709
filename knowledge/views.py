"""HTML pages. Every page resolves the user's readable knowledge bases first."""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from .models import KnowledgeBase


@login_required
def home(request: HttpRequest) -> HttpResponse:
    knowledge_bases = KnowledgeBase.objects.readable_by(request.user).prefetch_related("documents")
    return render(request, "knowledge/home.html", {"knowledge_bases": knowledge_bases})


@login_required
def knowledge_base_detail(request: HttpRequest, pk: int) -> HttpResponse:
    # A knowledge base the user may not read answers 404, exactly like a missing one.
    knowledge_base = get_object_or_404(KnowledgeBase.objects.readable_by(request.user), pk=pk)
    documents = knowledge_base.documents.order_by("-created_at")
    return render(
        request,
        "knowledge/knowledge_base.html",
        {"knowledge_base": knowledge_base, "documents": documents},
    )


def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
