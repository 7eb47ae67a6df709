"""manage.py ingest PATH... --kb NAME [--password P] [--json]"""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from knowledge import indexing, ingestion, uploads
from knowledge.errors import UploadRejectedError
from knowledge.models import Document, KnowledgeBase
from knowledge.progress import progress

# The indexes are published once per this many seconds of ingestion, and once at the end, not
# once per file: each publish is one delta of the files ingested since the last.
PUBLISH_EVERY_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Ingest files or folders into a knowledge base (created if missing), in this process. "
        "Prints one line per file; exits non-zero if any file failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="files or folders (searched recursively)")
        parser.add_argument("--kb", required=True, help="knowledge base name")
        parser.add_argument("--password", default="", help="password for encrypted PDFs")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="one JSON object per file"
        )

    def handle(self, *args, paths, kb, password, as_json, **options):
        files = collect_files(paths)
        if not files:
            raise CommandError("No files found under the given paths.")
        knowledge_base, _ = KnowledgeBase.objects.get_or_create(name=kb)
        failures, published = 0, time.monotonic()
        try:
            # Updated by hand: a bar iterated over keeps its count to itself between redraws,
            # so the file names and percentages shown beside it would stand next to a stale count.
            with progress(total=len(files), unit="file", desc="Ingesting") as bar:
                for path in files:
                    bar.set_postfix_str(path.name[:40])
                    row = ingest_file(knowledge_base, path, password, _showing_percent(bar, path))
                    failures += row["status"] == "failed"
                    with tqdm.external_write_mode():  # lines go above the bar, not through it
                        self.stdout.write(format_row(row, as_json))
                    bar.update(1)
                    if time.monotonic() - published >= PUBLISH_EVERY_SECONDS:
                        indexing.sync_index(knowledge_base)
                        published = time.monotonic()
        finally:
            indexing.sync_index(knowledge_base)  # also what an interrupted run had stored
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) failed.", returncode=1)


def collect_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{name} does not exist.")
    return files


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _showing_percent(bar: tqdm, path: Path) -> ingestion.ProgressCallback:
    """Show a file's progress beside its name: scanned pages take seconds each to read."""
    return lambda percent: bar.set_postfix_str(f"{path.name[:40]} {percent}%")


def ingest_file(
    knowledge_base: KnowledgeBase,
    path: Path,
    password: str,
    progress: ingestion.ProgressCallback | None = None,
) -> dict:
    row = {"file": str(path), "status": "failed", "pages": None, "chunks": 0, "error": None}
    try:
        with path.open("rb") as handle:
            upload = uploads.add_document(knowledge_base, path.name, handle, password=password)
    except (UploadRejectedError, OSError) as error:
        row["error"] = str(error)
        return row
    document = upload.document
    if not upload.created and document.state != Document.State.QUEUED:
        row["status"] = "skipped"
    else:
        # Published by the caller, with the other files of its batch.
        document = (
            ingestion.ingest_document(document.pk, progress, publish=ingestion.Publish.BY_CALLER)
            or document
        )
        row["status"] = document.state
    row.update(pages=document.page_count, chunks=document.chunk_count, error=document.error or None)
    if row["status"] == "skipped" and document.state == Document.State.FAILED:
        row["status"], row["error"] = "failed", document.error
    return row


def format_row(row: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(row, ensure_ascii=False)
    if row["status"] == "failed":
        return f"{'error':<8}{row['file']}: {row['error']}"
    label = "ok" if row["status"] == "indexed" else "skipped"
    pages = f"{row['pages']} page(s), " if row["pages"] else ""
    return f"{label:<8}{row['file']}: {pages}{row['chunks']} chunk(s)"
