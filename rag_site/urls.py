"""URL wiring: the admin, authentication, the interface language, and the knowledge app's pages
and API."""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from knowledge.metrics import metrics_view
from knowledge.security import LoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    # The login page says when a sign-in is locked out (knowledge.security).
    path("accounts/login/", LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    # POST language=en|zh-hans|zh-hant: the switcher in the header (remembered in a cookie).
    path("i18n/", include("django.conf.urls.i18n")),
    # gettext() for the pages' scripts, in the interface language (locale/*/djangojs.po).
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["knowledge"]), name="javascript-catalog"),
    # Prometheus metrics for operators: loopback, allowed addresses or a token (docs/operations.md).
    path("metrics", metrics_view, name="metrics"),
    path("", include("knowledge.api_urls")),
    path("", include("knowledge.urls")),
]
