"""manage.py rebuild_index [--kb NAME] [--reembed]"""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge import documents, indexing
from knowledge.management.knowledge_bases import selected_knowledge_bases
from knowledge.models import Document, KnowledgeBase


class Command(BaseCommand):
    help = (
        "Rebuild FAISS and BM25 indexes from the chunks and embeddings stored in the database. "
        "With --reembed, first embed again, in this process, the documents whose vectors another "
        "embedding model or backend made than the configured one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kb", help="knowledge base name (default: all)")
        parser.add_argument(
            "--reembed",
            action="store_true",
            help="re-ingest documents embedded by another model than RAG_EMBEDDING_MODEL/BACKEND",
        )

    def handle(self, *args, kb=None, reembed=False, **options):
        failures = 0
        for knowledge_base in selected_knowledge_bases(kb):
            if reembed:
                failures += self.reembed(knowledge_base)
            version = indexing.rebuild_index(knowledge_base)
            knowledge_base.refresh_from_db()
            self.stdout.write(
                f"{knowledge_base.name}: published index version {version} "
                f"({knowledge_base.embedding_model})"
            )
        if failures:
            raise CommandError(f"{failures} document(s) failed to embed again.", returncode=1)

    def reembed(self, knowledge_base: KnowledgeBase) -> int:
        """Re-ingest the stale documents one by one (their old chunks stay searchable until each
        is replaced); return how many failed."""
        stale = list(indexing.stale_documents(knowledge_base).values_list("pk", flat=True))
        failures = 0
        for pk in tqdm(stale, unit="doc", desc=knowledge_base.name, disable=None):
            document = documents.reembed_in_process(pk)
            if document is not None and document.state != Document.State.INDEXED:
                failures += 1
                self.stderr.write(f"{document}: {document.error}")
        return failures
