"""manage.py check_index [--kb NAME]"""

from django.core.management.base import BaseCommand, CommandError

from knowledge import indexing, uploads
from knowledge.management.knowledge_bases import selected_knowledge_bases


class Command(BaseCommand):
    help = (
        "Check that each knowledge base's published indexes hold exactly the chunks and vectors "
        "in the database, and that every stored upload file belongs to a document. Exits 0 "
        "only when all agree; otherwise prints what differs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kb", help="knowledge base name (default: all)")

    def handle(self, *args, kb=None, **options):
        inconsistent = 0
        for knowledge_base in selected_knowledge_bases(kb):
            report = indexing.check_index(knowledge_base)
            head = f"{report.knowledge_base}: version {report.version}, {report.chunks} chunk(s)"
            if report.problems:
                inconsistent += 1
                self.stdout.write(f"{head}: INCONSISTENT")
                for problem in report.problems:
                    self.stdout.write(f"  - {problem}")
            else:
                self.stdout.write(f"{head}: ok")
        problems = []
        if inconsistent:
            problems.append(
                f"{inconsistent} knowledge base(s) differ from the database; "
                "run `manage.py rebuild_index` to repair them"
            )
        if orphans := uploads.orphan_upload_files():
            self.stdout.write(f"uploads: {len(orphans)} upload file(s) belong to no document:")
            for name in orphans[:20]:
                self.stdout.write(f"  - {name}")
            problems.append(
                f"{len(orphans)} upload file(s) under MEDIA_ROOT belong to no document; "
                "delete them (files of the last 10 minutes are not counted)"
            )
        if problems:
            raise CommandError("; ".join(problems) + ".", returncode=1)
