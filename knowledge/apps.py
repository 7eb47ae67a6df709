from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        # System checks, signal handlers, and the Celery tasks that knowledge.dispatch sends
        # by name.
        from . import checks, security, signals, tasks  # noqa: F401
