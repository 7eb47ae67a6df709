from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        from . import checks, security, signals  # noqa: F401  (system checks, signal handlers)
