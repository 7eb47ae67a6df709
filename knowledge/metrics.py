"""Prometheus metrics for operators, served at /metrics (docs/operations.md lists them).

Counters and histograms are kept by the process that observes them: web processes time requests
and answers, Celery workers count ingestion. With PROMETHEUS_MULTIPROC_DIR set, every process
writes its values to files there and /metrics adds up the files of all processes (web and
worker) on the machine; without it, /metrics shows the serving process's own values. Queue depth
and index versions and sizes are read from the database at each scrape, so any process shows all.

/metrics is open to loopback callers (RAG_METRICS_LOOPBACK), to the addresses of
RAG_METRICS_ALLOWED_IPS, and to callers sending `Authorization: Bearer <RAG_METRICS_TOKEN>`;
everybody else gets the site's plain 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .security import client_address

# Seconds: an answer's stages run from milliseconds (retrieval) to a minute (a slow model).
STAGE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

REQUEST_SECONDS = Histogram(
    "rag_request_duration_seconds",
    "Time until a response starts, per view (a streamed answer: until its stream starts).",
    ["view", "method", "status"],
)
ANSWER_STAGE_SECONDS = Histogram(
    "rag_answer_stage_seconds",
    "Seconds of each stage of an answer: retrieval, first_token (from the question to the "
    "first piece of a model's answer), generation (from retrieval's end to the answer's end), "
    "total (from the question to the answer's end).",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
ANSWERS = Counter("rag_answers", "Answers recorded, by mode (llm or extractive).", ["mode"])
LLM_ERRORS = Counter(
    "rag_llm_errors",
    "Failed calls to the model server, by stage and error class.",
    ["stage", "kind"],
)
LLM_FALLBACKS = Counter(
    "rag_llm_fallbacks",
    "Answers given extractively because the model failed; streamed: the model had begun.",
    ["streamed"],
)
DOCUMENTS_INDEXED = Counter("rag_ingestion_documents_indexed", "Documents indexed.")
DOCUMENTS_FAILED = Counter(
    "rag_ingestion_documents_failed", "Documents whose ingestion failed, by reason.", ["reason"]
)
PAGES_INDEXED = Counter("rag_ingestion_pages", "Pages of the documents indexed.")
CHUNKS_INDEXED = Counter("rag_ingestion_chunks", "Passages (chunks) of the documents indexed.")


# --- Observations -------------------------------------------------------------------------------


def observe_answer(mode: str, timings: dict) -> None:
    """An answer was recorded; timings are its stored ones (milliseconds, None if missing)."""
    ANSWERS.labels(mode=mode).inc()
    for stage in ("retrieval", "first_token", "generation", "total"):
        if (milliseconds := timings.get(f"{stage}_ms")) is not None:
            ANSWER_STAGE_SECONDS.labels(stage=stage).observe(milliseconds / 1000)


def observe_llm_error(stage: str, error: Exception) -> None:
    LLM_ERRORS.labels(stage=stage, kind=type(error).__name__).inc()


def observe_fallback(streamed: bool, error: Exception) -> None:
    """The model failed while answering (streamed: after its first piece); the answer is given
    extractively instead."""
    observe_llm_error("answer", error)
    LLM_FALLBACKS.labels(streamed=str(streamed).lower()).inc()


def observe_indexed(pages: int | None, chunks: int) -> None:
    DOCUMENTS_INDEXED.inc()
    PAGES_INDEXED.inc(pages or 0)
    CHUNKS_INDEXED.inc(chunks)


def observe_failed(reason: str | Exception) -> None:
    """A document failed: reason is a short code, or the parser's error (named by its class:
    PasswordRequiredError -> password_required)."""
    if isinstance(reason, Exception):
        name = type(reason).__name__.removesuffix("Error") or "parse"
        reason = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    DOCUMENTS_FAILED.labels(reason=reason).inc()


class RequestMetricsMiddleware:
    """Times each request, labelled by the view that answered it (its URL name)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.url_name or "unnamed") if match else "unresolved"
        REQUEST_SECONDS.labels(
            view=view, method=_method(request.method), status=f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - started)
        return response


def _method(method: str | None) -> str:
    known = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    return method if method in known else "other"  # clients may send any word


# --- Read from the database at each scrape ------------------------------------------------------


class DatabaseCollector(Collector):
    """Queue depth, and each knowledge base's index version and size."""

    def collect(self) -> Iterator[Metric]:
        yield from _queue_metrics()
        yield from _index_metrics()


def _queue_metrics() -> Iterator[Metric]:
    from .models import Document

    waiting = (Document.State.QUEUED, Document.State.PROCESSING)
    queue = GaugeMetricFamily(
        "rag_ingestion_queue_documents",
        "Documents waiting for ingestion (queued) or being ingested (processing).",
        labels=["state"],
    )
    counts = dict(
        Document.objects.filter(state__in=waiting)
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    for state in waiting:
        queue.add_metric([state], counts.get(state, 0))
    yield queue
    oldest = Document.objects.filter(state__in=waiting).aggregate(t=Min("updated_at"))["t"]
    yield GaugeMetricFamily(
        "rag_ingestion_queue_oldest_seconds",
        "Seconds since the longest-waiting queued or processing document last changed "
        "(0 when none waits).",
        value=(timezone.now() - oldest).total_seconds() if oldest else 0,
    )


def _index_metrics() -> Iterator[Metric]:
    from .models import SEARCHABLE_STATES, Document, KnowledgeBase

    def per_base(name: str, documentation: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=["knowledge_base"])

    version = per_base("rag_index_version", "Published index version of each knowledge base.")
    chunks = per_base("rag_index_chunks", "Searchable passages (chunks) of each knowledge base.")
    documents = per_base("rag_index_documents", "Indexed documents of each knowledge base.")
    bases = KnowledgeBase.objects.annotate(
        searchable=Count("chunks", filter=Q(chunks__document__state__in=SEARCHABLE_STATES)),
    ).values_list("pk", "name", "index_version", "searchable")
    indexed = dict(
        Document.objects.filter(state=Document.State.INDEXED)
        .values_list("knowledge_base")
        .annotate(n=Count("pk"))
        .values_list("knowledge_base", "n")
    )
    for pk, name, index_version, searchable in bases:
        version.add_metric([name], index_version)
        chunks.add_metric([name], searchable)
        documents.add_metric([name], indexed.get(pk, 0))
    yield from (version, chunks, documents)


# --- The endpoint -------------------------------------------------------------------------------

_DATABASE = DatabaseCollector()


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format, for allowed callers; a 404 for the others."""
    if not allowed(request):
        raise Http404
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Forwarded(REGISTRY))
    registry.register(_DATABASE)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _Forwarded(Collector):
    """The process's own metrics (the default registry: ours and the process's CPU, memory)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


def allowed(request: HttpRequest) -> bool:
    token = settings.RAG_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    if settings.RAG_METRICS_LOOPBACK and address.is_loopback:
        return True
    return any(address in network for network in settings.RAG_METRICS_ALLOWED_IPS)
