from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers system checks and signal handlers)
