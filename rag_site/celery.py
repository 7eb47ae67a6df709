"""The Celery app. It autodiscovers knowledge.tasks and holds no task code itself."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_site.settings")

app = Celery("rag_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["knowledge"])
