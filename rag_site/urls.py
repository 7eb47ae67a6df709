"""URL wiring: the admin, authentication, and the knowledge app's pages and API."""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path

from knowledge.security import LoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    # The login page says when a sign-in is locked out (knowledge.security).
    path("accounts/login/", LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("knowledge.api_urls")),
    path("", include("knowledge.urls")),
]
