from django.templatetags.static import static
from django.urls import path, re_path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from . import chat_views, views

app_name = "knowledge"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.health, name="health"),
    # Browsers ask for /favicon.ico on every page that names none (the admin's, for one).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("knowledge/favicon.ico"))),
    path("knowledge-bases/<int:pk>/", views.knowledge_base_detail, name="knowledge_base"),
    path("knowledge-bases/<int:pk>/upload/", views.upload, name="upload"),
    path("documents/status/", views.documents_status_json, name="documents_status"),
    path("documents/<int:pk>/status/", views.document_status_json, name="document_status"),
    path("documents/<int:pk>/file/", views.document_file, name="document_file"),
    path("documents/<int:pk>/replace/", views.document_replace, name="document_replace"),
    re_path(
        r"^documents/(?P<pk>[0-9]+)/(?P<action>disable|enable|reindex|delete)/$",
        views.document_action,
        name="document_action",
    ),
    path("passages/<int:pk>/", views.passage, name="passage"),
    path("chat/", chat_views.chat, name="chat"),
    path("chat/<int:pk>/", chat_views.chat, name="conversation"),
    path("chat/<int:pk>/delete/", chat_views.conversation_delete, name="conversation_delete"),
    path("chat/stream/", chat_views.answer_stream, name="answer_stream"),
    path("answers/<int:pk>/feedback/", chat_views.feedback, name="feedback"),
]
