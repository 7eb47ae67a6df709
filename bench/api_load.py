"""API load: retrieval-only requests/s under concurrent load, and time to the first streamed token.

Usage: python bench/api_load.py [--json] [--concurrency 8] [--duration 20] [--workers 2]
                                [--threads 1] [--docs DIR] [--asks 10]
                                [--url URL --token KEY] [--data-dir DIR]

This script is the second process: it drives a gunicorn server over HTTP from its own threads.
Without --url it builds that server itself: a fresh temporary data folder and SQLite database,
`manage.py migrate`, `manage.py ingest DIR --kb bench` (default: the PagerDuty incident response
handbook in ../shared/data/handbook), a member user with `manage.py create_api_token`, then
gunicorn with --workers processes on a free port, throttles off, and one torch thread per process
(--embedding-threads: one query at a time gains nothing from more, and on a busy machine more
threads make a query's embedding many times slower). It measures, one after the other:

- healthz: GET /healthz at the same concurrency, the ceiling of the HTTP stack and database (the
  alternative a user would compare the search endpoint with);
- search: POST /api/v1/search/ (query embedding, FAISS + BM25 over the knowledge base, fusion,
  passages loaded from the database) with questions taking turns;
- ask: POST /api/v1/ask/ (a whole answer, stored in a conversation) at the same concurrency, its
  throughput beside search's;
- streaming: POST /api/v1/ask/ with "stream": true one at a time: time to the `sources` event and
  to the first `delta` (the first streamed token) and between the two, beside the same question
  without streaming
  (what a client waits for before it shows anything). Extractive answers unless the server has
  RAG_LLM_BASE_URL.

Progress goes to stderr; with --json, stdout carries exactly one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOCS = (
    REPO_ROOT.parent / "shared" / "data" / "handbook" / "pagerduty-incident-response" / "docs"
)
QUESTIONS = [
    "What does the incident commander do during a major incident?",
    "How do we decide the severity of an incident?",
    "Who writes the postmortem and when is it due?",
    "What should the scribe record during an incident call?",
    "How do I page the on-call engineer?",
    "What is the role of the deputy?",
    "When should we escalate to the executive team?",
    "How do we communicate status to customers?",
    "What happens after the incident is resolved?",
    "How do I hand off an incident at the end of my shift?",
    "What is a subject matter expert expected to do?",
    "Which channel is used for the incident call?",
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Load:
    """One endpoint under concurrent load."""

    name: str
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class Streaming:
    """Answer latency, one request at a time."""

    asks: int
    sources_p50_ms: float
    first_token_p50_ms: float
    first_token_p95_ms: float
    stream_total_p50_ms: float
    unstreamed_total_p50_ms: float
    # Server side: from the sources event to the first answer text, as the client sees it.
    sources_to_first_p50_ms: float
    sources_to_first_p95_ms: float


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- The server under test ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str, tolerate_failure: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode and tolerate_failure:
        log(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    elif result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def prepare(env: dict[str, str], docs: Path) -> str:
    """Migrate, ingest, create the bench user; returns its token."""
    log("migrating ...")
    manage(env, "migrate", "--noinput", "-v", "0")
    log(f"ingesting {docs} ...")
    started = time.perf_counter()
    rows = manage(env, "ingest", str(docs), "--kb", "bench", "--json", tolerate_failure=True)
    indexed = sum(json.loads(row)["status"] == "indexed" for row in rows.splitlines() if row)
    log(f"ingested {indexed} files in {time.perf_counter() - started:.0f} s")
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; from knowledge.models import KnowledgeBase;"
        "u = User.objects.create_user('bench', password='bench-password');"
        "KnowledgeBase.objects.get(name='bench').members.add(u)",
    )
    return manage(env, "create_api_token", "bench").strip()


@contextlib.contextmanager
def gunicorn(env: dict[str, str], workers: int, threads: int) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "rag_site.wsgi",
        f"--workers={workers}",
        f"--threads={threads}",
        f"--bind=127.0.0.1:{port}",
        "--timeout=120",
        "--log-level=warning",
    ]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    try:
        wait_until_up(url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_until_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"the server at {url} did not come up within {timeout:.0f} s")


def warm_up(url: str, token: str, workers: int) -> None:
    """Load the embedding model and the indexes in every worker before timing."""
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for question in QUESTIONS[: max(4, workers * 4)]:
            client.post("/api/v1/search/", json={"query": question}).raise_for_status()


# --- Measurements -------------------------------------------------------------------------------


def load(name: str, url: str, token: str, concurrency: int, duration: float, send) -> Load:
    """Send requests from `concurrency` threads for `duration` seconds."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker(offset: int) -> None:
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            turn = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    ok = send(client, QUESTIONS[turn % len(QUESTIONS)]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors[0] += not ok
                turn += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    ms = [latency * 1000 for latency in latencies]
    return Load(
        name,
        len(latencies),
        errors[0],
        round(seconds, 2),
        round(len(latencies) / seconds, 1),
        round(percentile(ms, 0.50), 1),
        round(percentile(ms, 0.95), 1),
        round(percentile(ms, 0.99), 1),
    )


def streamed_ask(client: httpx.Client, question: str) -> tuple[float, float, float]:
    """Seconds to the sources event, to the first delta, and to the end of the stream."""
    started = time.perf_counter()
    sources = first = None
    body = {"question": question, "stream": True}
    with client.stream("POST", "/api/v1/ask/", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line == "event: sources" and sources is None:
                sources = time.perf_counter() - started
            elif line == "event: delta" and first is None:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    return sources or total, first or total, total


def streaming(url: str, token: str, asks: int) -> Streaming:
    headers = {"Authorization": f"Token {token}"}
    sources, firsts, totals, unstreamed, gaps = [], [], [], [], []
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for number in range(asks):
            question = QUESTIONS[number % len(QUESTIONS)]
            source, first, total = streamed_ask(client, question)
            sources.append(source * 1000)
            firsts.append(first * 1000)
            totals.append(total * 1000)
            gaps.append((first - source) * 1000)
            started = time.perf_counter()
            client.post("/api/v1/ask/", json={"question": question}).raise_for_status()
            unstreamed.append((time.perf_counter() - started) * 1000)
    return Streaming(
        asks,
        round(statistics.median(sources), 1),
        round(statistics.median(firsts), 1),
        round(percentile(firsts, 0.95), 1),
        round(statistics.median(totals), 1),
        round(statistics.median(unstreamed), 1),
        round(statistics.median(gaps), 1),
        round(percentile(gaps, 0.95), 1),
    )


def search(client: httpx.Client, question: str) -> httpx.Response:
    return client.post("/api/v1/search/", json={"query": question, "top_k": 10})


def ask(client: httpx.Client, question: str) -> httpx.Response:
    return client.post("/api/v1/ask/", json={"question": question})


def healthz(client: httpx.Client, question: str) -> httpx.Response:
    return client.get("/healthz")


def measure(url: str, token: str, args: argparse.Namespace) -> dict:
    results = {}
    for name, send in (("healthz", healthz), ("search", search), ("ask", ask)):
        log(f"{name}: {args.concurrency} concurrent clients for {args.duration:.0f} s ...")
        results[name] = asdict(load(name, url, token, args.concurrency, args.duration, send))
    log(f"ask: {args.asks} streamed and {args.asks} unstreamed answers, one at a time ...")
    results["streaming"] = asdict(streaming(url, token, args.asks))
    return results


# --- Output -------------------------------------------------------------------------------------


def print_table(report: dict) -> None:
    setup = report["setup"]
    print(
        f"API load: {setup['concurrency']} concurrent clients, gunicorn {setup['workers']} "
        f"worker(s) x {setup['threads']} thread(s), {setup['cpus']} CPUs\n"
    )
    print(f"{'endpoint':<10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name in ("healthz", "search", "ask"):
        row = report[name]
        print(
            f"{name:<10} {row['requests_per_s']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} "
            f"{row['p99_ms']:>8} {row['errors']:>7}"
        )
    ratio = report["ask"]["requests_per_s"] / max(report["search"]["requests_per_s"], 1e-9)
    print(f"ask throughput / search throughput: {ratio:.2f}")
    ask = report["streaming"]
    print(f"\nask ({ask['asks']} questions, one at a time, median ms):")
    print(f"  streamed: sources event     {ask['sources_p50_ms']:>8}")
    p95 = ask["first_token_p95_ms"]
    print(f"  streamed: first token       {ask['first_token_p50_ms']:>8}  (p95 {p95})")
    print(f"  streamed: whole answer      {ask['stream_total_p50_ms']:>8}")
    print(f"  unstreamed: whole answer    {ask['unstreamed_total_p50_ms']:>8}")
    gap = ask["sources_to_first_p95_ms"]
    print(f"  sources -> first answer text {ask['sources_to_first_p50_ms']:>7}  (p95 {gap})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20, help="seconds per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument(
        "--embedding-threads",
        type=int,
        default=1,
        help="torch threads per server process (RAG_EMBEDDING_THREADS; 0: torch decides)",
    )
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--asks", type=int, default=10)
    parser.add_argument("--url", help="an already running server (skips the set-up)")
    parser.add_argument("--token", help="API token for --url")
    parser.add_argument(
        "--data-dir", type=Path, help="keep the prepared server data here and reuse it next time"
    )
    args = parser.parse_args()
    setup = {
        "concurrency": args.concurrency,
        "workers": args.workers,
        "threads": args.threads,
        "embedding_threads": args.embedding_threads,
        "cpus": os.cpu_count(),
        "docs": str(args.docs),
    }
    if args.url:
        report = {"setup": {**setup, "url": args.url}, **measure(args.url, args.token, args)}
    else:
        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="api-load-"))
        env = {
            **os.environ,
            "RAG_DATA_DIR": str(data_dir),
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "RAG_CELERY_EAGER": "true",
            "RAG_API_THROTTLE_USER": "",
            "RAG_API_THROTTLE_ASK": "",
            "RAG_API_THROTTLE_ANON": "",
            "RAG_EMBEDDING_THREADS": str(args.embedding_threads),
        }
        try:
            if (data_dir / "db.sqlite3").exists():
                token = manage(env, "create_api_token", "bench").strip()
            else:
                token = prepare(env, args.docs)
            with gunicorn(env, args.workers, args.threads) as url:
                warm_up(url, token, args.workers)
                report = {"setup": setup, **measure(url, token, args)}
        finally:
            if not args.data_dir:
                shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
