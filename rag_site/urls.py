"""URL wiring: the admin, authentication, and the knowledge app's pages and API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("knowledge.api_urls")),
    path("", include("knowledge.urls")),
]
