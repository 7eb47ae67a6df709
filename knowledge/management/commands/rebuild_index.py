"""manage.py rebuild_index [--kb NAME]"""

from django.core.management.base import BaseCommand, CommandError

from knowledge import services
from knowledge.models import KnowledgeBase


class Command(BaseCommand):
    help = "Rebuild FAISS and BM25 indexes from the chunks and embeddings stored in the database."

    def add_arguments(self, parser):
        parser.add_argument("--kb", help="knowledge base name (default: all)")

    def handle(self, *args, kb=None, **options):
        for knowledge_base in selected_knowledge_bases(kb):
            version = services.rebuild_index(knowledge_base)
            self.stdout.write(f"{knowledge_base.name}: published index version {version}")


def selected_knowledge_bases(name: str | None) -> list[KnowledgeBase]:
    knowledge_bases = KnowledgeBase.objects.all()
    if name:
        knowledge_bases = knowledge_bases.filter(name=name)
        if not knowledge_bases.exists():
            raise CommandError(f"No knowledge base is named {name!r}.")
    return list(knowledge_bases)
