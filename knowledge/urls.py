from django.urls import path

from . import views

app_name = "knowledge"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.health, name="health"),
    path("knowledge-bases/<int:pk>/", views.knowledge_base_detail, name="knowledge_base"),
]
