"""Routes of the REST API (/api/v1/), its schema and docs, and the OpenAI-compatible API (/v1/)."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny

from . import api, openai_api

app_name = "api"


@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
@permission_classes([AllowAny])
def not_found(request, path: str = ""):
    """Unknown API paths answer JSON, like every other API error."""
    raise NotFound("There is no such API endpoint.", "no_endpoint")


not_found.cls.schema = None  # not part of the documented API

# Swagger UI with its script served from a URL of its own: the content security policy allows
# no inline script.
swagger_ui = SpectacularSwaggerSplitView.as_view(url_name="api:schema")


def docs_page(request, *args, **kwargs):
    """The API docs page: a browser that is not signed in goes to the login page first, unless
    RAG_API_DOCS_PUBLIC (the schema behind it answers 401/403 alike)."""
    if not settings.RAG_API_DOCS_PUBLIC and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return swagger_ui(request, *args, **kwargs)


urlpatterns = [
    path("api/v1/knowledge-bases/", api.KnowledgeBaseList.as_view(), name="knowledge-bases"),
    path(
        "api/v1/knowledge-bases/<int:pk>/documents/",
        api.DocumentList.as_view(),
        name="documents",
    ),
    path("api/v1/documents/<int:pk>/", api.DocumentDetail.as_view(), name="document"),
    path("api/v1/documents/<int:pk>/file", api.DocumentFile.as_view(), name="document-file"),
    path("api/v1/search/", api.SearchView.as_view(), name="search"),
    path("api/v1/ask/", api.AskView.as_view(), name="ask"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", docs_page, name="docs"),
    path("v1/chat/completions", openai_api.ChatCompletions.as_view(), name="chat-completions"),
    path("v1/models", openai_api.Models.as_view(), name="models"),
    re_path(r"^(?:api/)?v1/(?P<path>.*)$", not_found),
]
