"""End-to-end ingestion throughput: our pipeline against bare embedding and a plain LangChain path.

Usage: python bench/ingest.py [--json] [--backend torch|onnx|onnx-int8] [--pdfs DIR]
                              [--large-pages N] [--skip-langchain] [--database-url URL] [--keep]
       python bench/ingest.py --ocr [--json] [--ocr-pages N] [--ocr-dpi DPI] [--ocr-languages L]

Three systems ingest the same inputs in one run on one machine:

- ours: knowledge.uploads.add_document() then ingest_document() per file, the path a Celery
  worker takes (parse, chunk, embed, store the chunks, publish the FAISS and BM25 indexes);
- bare embedding: the embedding model alone, on the same backend as our pipeline (--backend,
  default RAG_EMBEDDING_BACKEND), on exactly the chunk texts our pipeline stored, one call per
  document timed right after that document's ingestion (so machine drift hits both alike), the
  ceiling for our throughput (the goal is ours >= 0.85 of it); also, for reference, one call
  over all chunk texts at the end (bare_embedding_one_call), and when the backend is not torch,
  the PyTorch fp32 model on the same texts right after (bare_embedding_torch_fp32);
- langchain: what a user would write: PyPDFLoader (TextLoader for the Markdown document),
  RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200), HuggingFaceEmbeddings on
  the same model folder, FAISS.from_documents.

Inputs: every file of the PDF folder (default ../shared/data/pdfs), and one large Markdown
document generated from the handbooks in ../shared/data/handbook: --large-pages pages of about
3,000 characters each, separated by form feeds. The embedding model is loaded and warmed up
before any timing, so model load time (and the ONNX export, timed apart) is excluded for every
system. Django runs in-process
against a fresh temporary data folder and SQLite database (or --database-url). Progress goes to
stderr; with --json, stdout carries exactly one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PAGE_CHARS = 3000
LARGE_NAME = "generated-handbook.md"
NOT_CONTENT = {"SOURCE.md", "LICENSE.md", "LICENSE"}
GOAL_RATIO = 0.85


def log(message: str) -> None:
    """Progress and diagnostics, always on stderr."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Measurement:
    """What one system did with one group of inputs (or all of them)."""

    files_ok: int = 0
    files_failed: int = 0
    pages: int = 0
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def rate(self, count: int) -> float:
        """count per second of measured time."""
        return count / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        """The fields plus pages/s, chunks/s and tokens/s."""
        return {
            **asdict(self),
            "seconds": round(self.seconds, 3),
            "pages_per_s": round(self.rate(self.pages), 2),
            "chunks_per_s": round(self.rate(self.chunks), 2),
            "tokens_per_s": round(self.rate(self.tokens), 1),
        }


def combined(parts: dict[str, Measurement]) -> Measurement:
    """Sum the measurements of several input groups."""
    total = Measurement()
    for part in parts.values():
        for name in ("files_ok", "files_failed", "pages", "chunks", "tokens", "seconds"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.failures += part.failures
    return total


@dataclass
class SystemResult:
    """A system's totals, its measurements per input group, and remarks on how to read them."""

    parts: dict[str, Measurement]
    notes: list[str] = field(default_factory=list)
    total: Measurement = field(init=False)

    def __post_init__(self) -> None:
        self.total = combined(self.parts)

    def as_dict(self) -> dict:
        """Totals at the top level, then parts and notes."""
        parts = {name: part.as_dict() for name, part in self.parts.items()}
        return {**self.total.as_dict(), "parts": parts, "notes": self.notes}


# --- Set-up ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--pdfs", type=Path, default=SHARED_DATA / "pdfs", help="PDF folder")
    parser.add_argument(
        "--handbook",
        type=Path,
        default=SHARED_DATA / "handbook",
        help="Markdown folder the large document is generated from",
    )
    parser.add_argument(
        "--large-pages",
        type=int,
        default=300,
        help="pages of the generated Markdown document (0: none)",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx", "onnx-int8"),
        help="embedding backend of our pipeline (default: RAG_EMBEDDING_BACKEND)",
    )
    parser.add_argument("--skip-langchain", action="store_true", help="leave LangChain out")
    parser.add_argument("--database-url", help="database to use instead of a fresh SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument(
        "--ocr",
        action="store_true",
        help="only the OCR figures: character error rate and pages/s on scanned pages",
    )
    parser.add_argument("--ocr-pages", type=int, default=2, help="scanned pages per language")
    parser.add_argument("--ocr-dpi", type=int, default=300, help="resolution pages are read at")
    parser.add_argument("--ocr-languages", default="eng+chi_sim+chi_tra", help="Tesseract's")
    return parser.parse_args(argv)


def run_ocr(args: argparse.Namespace) -> dict:
    """OCR accuracy and speed: pages drawn from the PagerDuty handbook (English) and the CMRC 2018
    corpus (Chinese) with Noto Sans CJK at 12 pt and 200 dpi, put into one image-only PDF, and
    read back by parse_document with Tesseract; the error rate is against the text drawn."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import pytesseract

    from retrieval.ocr import TesseractOcr
    from retrieval.parsing import parse_document
    from tests.scans import (
        character_error_rate,
        chinese_paragraphs,
        draw_page,
        english_paragraphs,
        image_pdf,
    )

    count = args.ocr_pages
    paragraphs = english_paragraphs(3 * count)
    english = [draw_page(paragraphs[3 * n : 3 * n + 3]) for n in range(count)]
    chinese = [draw_page(chinese_paragraphs(1, skip=n)) for n in range(count)]
    data = image_pdf([page for page, _ in english + chinese])
    ocr = TesseractOcr(args.ocr_languages, args.ocr_dpi)
    log(f"OCR of {2 * count} scanned pages at {args.ocr_dpi} dpi ({args.ocr_languages}) ...")
    started = time.perf_counter()
    document = parse_document(data, "scan.pdf", ocr=ocr)
    seconds = time.perf_counter() - started
    text = {section.page: section.text for section in document.sections}

    def error_rate(pages: list, first: int) -> float:
        rates = [
            character_error_rate(drawn, text.get(first + n, ""))
            for n, (_, drawn) in enumerate(pages)
        ]
        return round(sum(rates) / len(rates), 4)

    return {
        "tesseract": str(pytesseract.get_tesseract_version()),
        "languages": args.ocr_languages,
        "dpi": args.ocr_dpi,
        "pages": 2 * count,
        "seconds": round(seconds, 2),
        "pages_per_second": round(2 * count / seconds, 3),
        "character_error_rate_english": error_rate(english, 1),
        "character_error_rate_chinese": error_rate(chinese, count + 1),
    }


def print_ocr_report(result: dict) -> None:
    print(
        f"OCR (Tesseract {result['tesseract']}, {result['languages']}, {result['dpi']} dpi): "
        f"{result['pages']} scanned pages in {result['seconds']} s, "
        f"{result['pages_per_second']} pages/s; character error rate: "
        f"English {result['character_error_rate_english']:.2%}, "
        f"Chinese {result['character_error_rate_chinese']:.2%}"
    )


def setup_django(data_dir: Path, database_url: str | None, backend: str | None) -> None:
    """Point the settings at the temporary data folder, start Django and migrate."""
    os.environ["RAG_DATA_DIR"] = str(data_dir)
    if backend:
        os.environ["RAG_EMBEDDING_BACKEND"] = backend
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{data_dir / 'db.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "rag_site.settings"
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def handbook_lines(root: Path) -> Iterator[str]:
    """The lines of every handbook Markdown file (sorted, YAML front matter dropped), forever."""
    files = sorted(p for p in root.rglob("*.md") if p.name not in NOT_CONTENT)
    lines = [
        line
        for path in files
        for line in [*strip_front_matter(path.read_text("utf-8", errors="replace")).split("\n"), ""]
    ]
    if not any(line.strip() for line in lines):
        raise SystemExit(f"No Markdown text found under {root}.")
    return itertools.cycle(lines)


def strip_front_matter(text: str) -> str:
    """Drop a leading '---' ... '---' YAML block, which a user's own document would not have."""
    if not text.startswith("---\n"):
        return text
    end = text.find("\n---", 4)
    return text if end < 0 else text[text.find("\n", end + 4) + 1 :]


def build_large_document(handbook: Path, pages: int, target: Path) -> Path:
    """Write `pages` pages of about PAGE_CHARS characters of handbook Markdown, form-feed apart."""
    lines = handbook_lines(handbook)
    texts = []
    for _ in range(pages):
        page: list[str] = []
        size = 0
        while size < PAGE_CHARS:
            page.append(next(lines))
            size += len(page[-1]) + 1
        texts.append("\n".join(page))
    target.write_text("\n\f\n".join(texts), encoding="utf-8")
    return target


def collect_inputs(args: argparse.Namespace, data_dir: Path) -> dict[str, list[Path]]:
    """The input groups: every file of the PDF folder, and the generated Markdown document."""
    inputs = {"pdfs": sorted(p for p in args.pdfs.iterdir() if p.suffix.lower() == ".pdf")}
    if args.large_pages > 0:
        large = build_large_document(args.handbook, args.large_pages, data_dir / LARGE_NAME)
        inputs["large"] = [large]
    return inputs


def warm_up_embedder():
    """Load our embedding model (exporting it first for ONNX) and run it once, so no timing
    includes the load; return it with the seconds the load took."""
    from knowledge import components

    start = time.perf_counter()
    embedder = components.get_embedder()
    embedder.embed(["warm up"])
    return embedder, time.perf_counter() - start


def reference_embedder(embedder):
    """The PyTorch fp32 model, warm, when our pipeline runs another backend; None otherwise."""
    from django.conf import settings

    from knowledge import components

    if settings.RAG_EMBEDDING_BACKEND == "torch" or embedder.name.startswith("hashing"):
        return None
    reference = components.EMBEDDING_BACKENDS["torch"](settings.RAG_EMBEDDING_MODEL)
    reference.embed(["warm up"])
    return reference


# --- Our pipeline -------------------------------------------------------------------------------


def run_ours(
    knowledge_base, inputs: dict[str, list[Path]], large_pages: int, embedders: list
) -> tuple[SystemResult, ...]:
    """Ingest every input group through knowledge.services, timing each file; right after each
    file, embed its stored chunk texts alone with each of embedders (ours first, then the
    PyTorch reference if any), so that machine drift hits them all alike."""
    parts: dict[str, Measurement] = {}
    bare_parts: list[dict[str, Measurement]] = [{} for _ in embedders]
    for name, paths in inputs.items():
        parts[name], *bare = ingest_ours(knowledge_base, paths, embedders)
        for target, measurement in zip(bare_parts, bare, strict=True):
            target[name] = measurement
    notes = ["pages: Document.page_count of the PDFs indexed"]
    if "large" in parts:
        parts["large"].pages = large_pages
        notes.append(f"large: {large_pages} generated pages, {large_section_note(inputs)}")
    bare_notes = [
        "embedder.embed() on each document's stored chunk texts, one call per "
        "document, timed right after that document's ingestion"
    ]
    bare_results = [
        SystemResult(part, [f"{embedder.name}: {bare_notes[0]}"])
        for embedder, part in zip(embedders, bare_parts, strict=True)
    ]
    return SystemResult(parts, notes), *bare_results


def ingest_ours(knowledge_base, paths: list[Path], embedders: list) -> list[Measurement]:
    """add_document + ingest_document for each file, then bare embedding of its chunks with
    each embedder; returns our measurement, then one per embedder."""
    measurement, bare = Measurement(), [Measurement() for _ in embedders]
    indexed = []
    for path in paths:
        start = time.perf_counter()
        document_id = ingest_one(knowledge_base, path, measurement)
        measurement.seconds += time.perf_counter() - start
        if document_id is not None:
            indexed.append(document_id)
            for embedder, alone in zip(embedders, bare, strict=True):
                embed_alone(document_id, embedder, alone)
    count_ours(measurement, indexed)
    return [measurement, *bare]


def embed_alone(document_id: int, embedder, bare: Measurement) -> None:
    """Time the embedding model alone on one document's stored chunk texts."""
    from knowledge.models import Chunk

    rows = list(
        Chunk.objects.filter(document_id=document_id)
        .order_by("order")
        .values_list("text", "token_count")
    )
    start = time.perf_counter()
    embedder.embed([text for text, _ in rows])
    bare.seconds += time.perf_counter() - start
    bare.chunks += len(rows)
    bare.tokens += sum(tokens for _, tokens in rows)


def ingest_one(knowledge_base, path: Path, measurement: Measurement) -> int | None:
    """Ingest one file; return its document id when indexed, record why it failed otherwise."""
    from knowledge import ingestion, uploads
    from knowledge.errors import UploadRejectedError
    from knowledge.models import Document

    log(f"ours: {path.name}")
    try:
        with path.open("rb") as handle:
            document = uploads.add_document(knowledge_base, path.name, handle).document
        document = ingestion.ingest_document(document.pk) or document
    except UploadRejectedError as error:
        return record_failure(measurement, path, f"UploadRejectedError: {error}")
    except Exception as error:  # a crash in our code: show it, do not hide it
        log(traceback.format_exc())
        return record_failure(measurement, path, f"CRASH {type(error).__name__}: {error}")
    if document.state != Document.State.INDEXED:
        reason = document.error if document.state == Document.State.FAILED else document.state
        return record_failure(measurement, path, reason)
    measurement.files_ok += 1
    return document.pk


def record_failure(measurement: Measurement, path: Path, reason: str) -> None:
    """Count a failed file and keep its reason."""
    measurement.files_failed += 1
    measurement.failures.append(f"{path.name}: {reason}")
    log(f"  failed: {reason}")


def count_ours(measurement: Measurement, document_ids: list[int]) -> None:
    """Pages, chunks and tokens of the indexed documents, read from the database."""
    from django.db.models import Sum

    from knowledge.models import Chunk, Document

    documents = Document.objects.filter(pk__in=document_ids)
    measurement.pages = sum(documents.exclude(page_count=None).values_list("page_count", flat=True))
    measurement.chunks = sum(documents.values_list("chunk_count", flat=True))
    tokens = Chunk.objects.filter(document_id__in=document_ids).aggregate(n=Sum("token_count"))
    measurement.tokens = tokens["n"] or 0


def large_section_note(inputs: dict[str, list[Path]]) -> str:
    """How our parser reads the generated document (it has no page numbers), counted untimed."""
    from retrieval.parsing import parse_document

    path = inputs["large"][0]
    parsed = parse_document(path.read_bytes(), path.name)
    return (
        f"which our {parsed.file_type} parser reads as {len(parsed.sections)} heading "
        f"sections without page numbers (page_count {parsed.page_count})"
    )


# --- Bare embedding -----------------------------------------------------------------------------


def run_bare(knowledge_base, embedder) -> SystemResult:
    """Embed exactly our stored chunk texts, in order, with nothing else around it."""
    from knowledge.models import Chunk

    rows = Chunk.objects.filter(knowledge_base=knowledge_base).order_by("document_id", "order")
    texts, tokens = [], 0
    for text, token_count in rows.values_list("text", "token_count"):
        texts.append(text)
        tokens += token_count
    log(f"bare embedding: {len(texts)} chunks")
    start = time.perf_counter()
    embedder.embed(texts)
    seconds = time.perf_counter() - start
    measurement = Measurement(chunks=len(texts), tokens=tokens, seconds=seconds)
    return SystemResult({"all": measurement}, ["embedder.embed() on our chunk texts, one call"])


# --- LangChain ----------------------------------------------------------------------------------


def langchain_embeddings(model: str):
    """HuggingFaceEmbeddings on our model folder (langchain_huggingface if installed), warm."""
    try:
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        from langchain_community.embeddings import HuggingFaceEmbeddings
    embeddings = HuggingFaceEmbeddings(model_name=model, model_kwargs={"device": "cpu"})
    embeddings.embed_query("warm up")
    return embeddings, HuggingFaceEmbeddings.__module__


def run_langchain(inputs: dict[str, list[Path]], large_pages: int, embedder) -> SystemResult:
    """Load, split, embed and index every input group into one FAISS store, timing each."""
    from django.conf import settings

    embeddings, module = langchain_embeddings(settings.RAG_EMBEDDING_MODEL)
    state: dict = {"store": None, "empty_files": 0, "too_long": 0, "lost_tokens": 0}
    parts = {}
    for name, paths in inputs.items():
        parts[name] = langchain_part(paths, embeddings, state, embedder)
    if "large" in parts:
        parts["large"].pages = large_pages
    notes = [
        f"embeddings: {module}.HuggingFaceEmbeddings (device cpu, like ours)",
        "pages: Documents PyPDFLoader returned (one per page); large: the generated pages",
        "tokens: its chunks counted with our embedder's tokenizer (outside the timing)",
        f"{state['empty_files']} file(s) loaded without any text (nothing indexed, no error)",
        f"{state['too_long']} chunk(s) over the model's {embedder.max_tokens}-token limit: "
        f"{state['lost_tokens']} token(s) silently truncated at embedding time",
    ]
    return SystemResult(parts, notes)


def langchain_part(paths: list[Path], embeddings, state: dict, embedder) -> Measurement:
    """Time load + split + embed + index of one input group."""
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    measurement = Measurement()
    start = time.perf_counter()
    documents = [doc for path in paths for doc in langchain_load(path, measurement, state)]
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = splitter.split_documents(documents)
    if chunks and state["store"] is None:
        state["store"] = FAISS.from_documents(chunks, embeddings)
    elif chunks:
        state["store"].add_documents(chunks)
    measurement.seconds = time.perf_counter() - start
    measurement.pages = sum(doc.metadata.get("page") is not None for doc in documents)
    count_langchain_tokens(measurement, [chunk.page_content for chunk in chunks], state, embedder)
    return measurement


def langchain_load(path: Path, measurement: Measurement, state: dict) -> list:
    """PyPDFLoader for PDFs, TextLoader otherwise; a file that raises counts as failed."""
    from langchain_community.document_loaders import PyPDFLoader, TextLoader

    log(f"langchain: {path.name}")
    try:
        if path.suffix.lower() == ".pdf":
            documents = PyPDFLoader(str(path)).load()
        else:
            documents = TextLoader(str(path), encoding="utf-8").load()
    except Exception as error:
        record_failure(measurement, path, f"{type(error).__name__}: {error}"[:300])
        return []
    measurement.files_ok += 1
    state["empty_files"] += not any(doc.page_content.strip() for doc in documents)
    return documents


def count_langchain_tokens(measurement: Measurement, texts: list[str], state: dict, embedder):
    """Count the chunks' tokens with our tokenizer, and what the model's limit cuts off."""
    counts = embedder.count_tokens(texts)
    measurement.chunks = len(texts)
    measurement.tokens = sum(counts)
    over = [count - embedder.max_tokens for count in counts if count > embedder.max_tokens]
    state["too_long"] += len(over)
    state["lost_tokens"] += sum(over)


# --- Report -------------------------------------------------------------------------------------

COLUMNS = (
    "system",
    "files ok",
    "files failed",
    "pages",
    "chunks",
    "tokens",
    "seconds",
    "pages/s",
    "chunks/s",
    "tokens/s",
)


def table_row(label: str, m: Measurement, with_files: bool = True) -> list[str]:
    """One table row; '-' where the system has no files or pages."""
    files = [str(m.files_ok), str(m.files_failed), str(m.pages)] if with_files else ["-"] * 3
    rates = [
        f"{m.rate(m.pages):.1f}" if with_files else "-",
        f"{m.rate(m.chunks):.1f}",
        f"{m.rate(m.tokens):,.0f}",
    ]
    return [label, *files, str(m.chunks), f"{m.tokens:,}", f"{m.seconds:.2f}", *rates]


def format_table(results: dict[str, SystemResult]) -> str:
    """Systems with their totals, then one indented row per input group."""
    rows = [list(COLUMNS)]
    for name, result in results.items():
        with_files = not name.startswith("bare_embedding")
        rows.append(table_row(name, result.total, with_files))
        if len(result.parts) > 1:
            rows += [table_row(f"  {part}", m, with_files) for part, m in result.parts.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        " | ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(results: dict[str, SystemResult]) -> float | None:
    """Our tokens/s over bare embedding's (same backend), on the same chunk texts."""
    ours, bare = results["ours"].total, results["bare_embedding"].total
    return ours.rate(ours.tokens) / bare.rate(bare.tokens) if bare.rate(bare.tokens) else None


def speedup_over_langchain(results: dict[str, SystemResult]) -> float | None:
    """LangChain's wall time over ours, for the same input files (above 1: we are faster)."""
    if "langchain" not in results or not results["ours"].total.seconds:
        return None
    return results["langchain"].total.seconds / results["ours"].total.seconds


def machine_info(embedder, load_seconds: float) -> dict:
    """CPU count, threads, versions, the model and its backend."""
    import onnxruntime
    import torch
    from django.conf import settings

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "onnxruntime": onnxruntime.__version__,
        "model": embedder.name,
        "backend": settings.RAG_EMBEDDING_BACKEND,
        "embedding_threads": settings.RAG_EMBEDDING_THREADS,
        "embedding_batch_size": settings.RAG_EMBEDDING_BATCH_SIZE,
        "model_load_seconds": round(load_seconds, 1),
        "model_load": "excluded: loaded (ONNX: exported first) and warmed up before timing",
    }


def print_report(results: dict[str, SystemResult], machine: dict) -> None:
    """The readable report on stdout."""
    print(format_table(results))
    value = ratio(results)
    if value is not None:
        verdict = "meets" if value >= GOAL_RATIO else "misses"
        print(
            f"\nours / bare embedding (tokens/s, same backend): {value:.2f} "
            f"({verdict} the goal >= {GOAL_RATIO})"
        )
    if (speedup := speedup_over_langchain(results)) is not None:
        verdict = "faster" if speedup > 1 else "slower"
        print(f"langchain seconds / ours: {speedup:.2f} (ours is {verdict}, same input files)")
    print(
        f"Machine: {machine['cpu_count']} CPUs, torch threads {machine['torch_threads']}, "
        f"torch {machine['torch']}, Python {machine['python']}, {machine['platform']}, "
        f"load average at the end {machine['load_average_1min']} (other work skews timings)"
    )
    print(
        f"Model: {machine['model']}, backend {machine['backend']}, onnxruntime "
        f"{machine['onnxruntime']}; load {machine['model_load_seconds']} s "
        f"({machine['model_load']})"
    )
    for name, result in results.items():
        for line in result.notes + [f"failed: {f}" for f in result.total.failures]:
            print(f"{name}: {line}")


def json_report(results: dict[str, SystemResult], machine: dict) -> dict:
    """One object: a key per system, the ratio and the machine."""
    report: dict = {name: result.as_dict() for name, result in results.items()}
    value = ratio(results)
    report["ratio_ours_over_bare"] = round(value, 4) if value is not None else None
    report["goal_ratio"] = GOAL_RATIO
    speedup = speedup_over_langchain(results)
    report["langchain_seconds_over_ours"] = round(speedup, 4) if speedup is not None else None
    report["machine"] = machine
    return report


# --- Main ---------------------------------------------------------------------------------------


def run_all(args: argparse.Namespace, data_dir: Path) -> tuple[dict[str, SystemResult], dict]:
    """Set up, warm the model, then measure ours, bare embedding and LangChain in that order."""
    setup_django(data_dir, args.database_url, args.backend)
    from knowledge.models import KnowledgeBase

    inputs = collect_inputs(args, data_dir)
    embedder, load_seconds = warm_up_embedder()
    reference = reference_embedder(embedder)
    embedders = [embedder] + ([reference] if reference else [])
    knowledge_base = KnowledgeBase.objects.create(name=f"bench-ingest-{uuid.uuid4().hex[:8]}")
    try:
        ours, bare, *torch_bare = run_ours(knowledge_base, inputs, args.large_pages, embedders)
        results = {"ours": ours, "bare_embedding": bare}
        if torch_bare:
            results["bare_embedding_torch_fp32"] = torch_bare[0]
        results["bare_embedding_one_call"] = run_bare(knowledge_base, embedder)
        if not args.skip_langchain:
            results["langchain"] = run_langchain(inputs, args.large_pages, embedder)
    finally:
        if args.database_url:
            knowledge_base.delete()
    return results, machine_info(embedder, load_seconds)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (or the JSON object)."""
    args = parse_args(argv)
    if args.ocr:
        result = run_ocr(args)
        if args.json:
            print(json.dumps(result))
        else:
            print_ocr_report(result)
        return 0
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    log(f"data folder: {data_dir}")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # libraries' prints must not reach stdout
            results, machine = run_all(args, data_dir)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(json_report(results, machine), ensure_ascii=False))
    else:
        print_report(results, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
