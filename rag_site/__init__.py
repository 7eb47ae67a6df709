"""Django project wiring: settings, urls, the Celery app, server entry points."""

from .celery import app as celery_app

__all__ = ("celery_app",)
