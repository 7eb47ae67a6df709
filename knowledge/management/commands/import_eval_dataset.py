"""manage.py import_eval_dataset SOURCE --kb NAME --out FILE.jsonl [--split test]
[--limit-queries N] [--limit-docs N]

Turns a labelled dataset folder into a knowledge base plus an evaluation dataset for `evaluate`:
- BEIR layout (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv): each corpus entry becomes a text
  document named <BEIR id>.txt ("title" then "text") with the entry's title as its title; each
  query with judgements becomes a row whose relevant_doc_ids are the ids of those documents in
  this database, and whose reference answers are the query's `metadata.answers` where it has
  them (CMRC 2018).
- llama-datasets layout (rag_dataset.json, source_files/): the source files are ingested as they
  are; each example becomes a row with its reference answer and reference contexts.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from knowledge import indexing, ingestion, uploads
from knowledge.models import Document, KnowledgeBase
from knowledge.progress import progress


class Command(BaseCommand):
    help = (
        "Import a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/) or a llama-datasets RAG "
        "dataset (rag_dataset.json, source_files/) as a knowledge base, and write its questions "
        "as an evaluation dataset (JSON lines) for the evaluate command."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", type=Path, help="dataset folder")
        parser.add_argument("--kb", required=True, help="knowledge base name (created if missing)")
        parser.add_argument("--out", required=True, type=Path, help="evaluation dataset to write")
        parser.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
        parser.add_argument(
            "--limit-queries", type=int, default=None, help="BEIR: the first N judged queries"
        )
        parser.add_argument(
            "--limit-docs",
            type=int,
            default=None,
            help="BEIR: the kept queries' relevant documents, then others up to N in all",
        )

    def handle(self, *args, source, kb, out, split, limit_queries, limit_docs, **options):
        knowledge_base, _ = KnowledgeBase.objects.get_or_create(name=kb)
        if (source / "corpus.jsonl").is_file():
            rows = self.import_beir(knowledge_base, source, split, limit_queries, limit_docs)
        elif (source / "rag_dataset.json").is_file():
            rows = self.import_llama_dataset(knowledge_base, source)
        else:
            raise CommandError(
                f"{source} is neither a BEIR folder (corpus.jsonl) nor a llama-datasets folder "
                "(rag_dataset.json)."
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.stdout.write(f"Wrote {len(rows)} question(s) to {out} for knowledge base {kb!r}.")

    # --- BEIR ---------------------------------------------------------------------------------

    def import_beir(self, knowledge_base, source: Path, split, limit_queries, limit_docs):
        qrels = read_qrels(source / "qrels" / f"{split}.tsv")
        rows = read_jsonl(source / "queries.jsonl")
        queries = {row["_id"]: row["text"] for row in rows}
        answers = {row["_id"]: _answers(row) for row in rows}
        query_ids = [q for q in qrels if q in queries][:limit_queries]
        wanted = {doc for q in query_ids for doc in qrels[q]}
        corpus = read_jsonl(source / "corpus.jsonl")
        corpus.sort(key=lambda row: row["_id"] not in wanted)  # stable: relevant ones first
        corpus = corpus[: max(limit_docs, len(wanted))] if limit_docs else corpus
        ids = self._ingest_texts(knowledge_base, corpus)
        return [
            {
                "id": query_id,
                "question": queries[query_id],
                "relevant_doc_ids": [ids[doc] for doc in qrels[query_id] if doc in ids],
            }
            | (
                {"reference_answer": answers[query_id][0], "reference_answers": answers[query_id]}
                if answers[query_id]
                else {}
            )
            for query_id in query_ids
        ]

    def _ingest_texts(self, knowledge_base, corpus: list[dict]) -> dict[str, int]:
        """Add each corpus entry as <id>.txt titled with its title, ingest without publishing,
        then publish once."""
        ids: dict[str, int] = {}
        for row in progress(corpus, unit="doc", desc="Ingesting the corpus"):
            title = row.get("title", "").strip()
            text = f"{title}\n\n{row.get('text', '').strip()}".strip()
            if not text:
                continue
            name = f"{row['_id']}.txt"
            content = io.BytesIO(text.encode())
            upload = uploads.add_document(knowledge_base, name, content, title=title)
            document = upload.document
            if document.state == Document.State.QUEUED:
                document = (
                    ingestion.ingest_document(document.pk, publish=ingestion.Publish.BY_CALLER)
                    or document
                )
            if document.state == Document.State.INDEXED:
                ids[row["_id"]] = document.pk
        self.stderr.write(f"Building the search indexes of {len(ids)} document(s)…")
        indexing.sync_index(knowledge_base)
        return ids

    # --- llama-datasets -------------------------------------------------------------------------

    def import_llama_dataset(self, knowledge_base, source: Path) -> list[dict]:
        try:
            examples = json.loads((source / "rag_dataset.json").read_text())["examples"]
        except (OSError, ValueError, KeyError) as error:
            raise CommandError(f"Cannot read {source / 'rag_dataset.json'}: {error}") from None
        files = sorted(p for p in (source / "source_files").glob("*") if p.is_file())
        for path in progress(files, unit="file", desc="Ingesting the source files"):
            with path.open("rb") as handle:
                document = uploads.add_document(knowledge_base, path.name, handle).document
            if document.state == Document.State.QUEUED:
                document = ingestion.ingest_document(document.pk) or document
            if document.state != Document.State.INDEXED:
                raise CommandError(f"{path.name} was not indexed: {document.error}")
        return [
            {
                "id": f"q{number:03d}",
                "question": example["query"],
                "reference_answer": example.get("reference_answer"),
                "reference_contexts": example.get("reference_contexts") or [],
            }
            for number, example in enumerate(examples, start=1)
        ]


def _answers(query: dict) -> list[str]:
    """A BEIR query's reference answers (`metadata.answers`, as CMRC 2018 has), each once."""
    metadata = query.get("metadata") or {}
    answers = metadata.get("answers") if isinstance(metadata, dict) else None
    if not isinstance(answers, list):
        return []
    return list(dict.fromkeys(str(a).strip() for a in answers if str(a).strip()))


def read_jsonl(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError) as error:
        raise CommandError(f"Cannot read {path}: {error}") from None


def read_qrels(path: Path) -> dict[str, list[str]]:
    """query id -> relevant corpus ids (score > 0), in file order; the header line is skipped."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error}") from None
    qrels: dict[str, list[str]] = {}
    for row in rows[1:]:
        if len(row) >= 3 and float(row[2]) > 0:
            qrels.setdefault(row[0].strip(), []).append(row[1].strip())
    return qrels
