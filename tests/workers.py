"""A real Celery worker process for the tests that need one (the `worker` fixture, registered
in tests/conftest.py; `start_worker` starts one after fixtures that set its environment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connection

from rag_site.celery import app
from tests.conftest import REPO_ROOT

LEASE_SECONDS = 4


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


class Worker:
    """A `celery worker` subprocess on a queue of its own, sharing this test's database."""

    def __init__(self, queue: str, log_path) -> None:
        self.queue, self.log_path = queue, log_path
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}  # settings of this worker's own, for its next start

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "RAG_DATA_DIR": str(settings.RAG_DATA_DIR),
            "RAG_CELERY_QUEUE": self.queue,
            "RAG_INGEST_LEASE_SECONDS": str(LEASE_SECONDS),
            "RAG_TASK_VISIBILITY_TIMEOUT": "8",
            **self.env,
        }
        if not settings.REDIS_URL:
            env["RAG_BROKER_DIR"] = str(settings.BROKER_DIR)
        log = open(self.log_path, "ab")  # noqa: SIM115  (closed with the process)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "rag_site",
                "worker",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                self.queue,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the pool child dies with its parent
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[..., Worker]]:
    """Start a worker on a queue of its own, which the app sends to; killed after the test."""
    started: list[Worker] = []
    previous = app.conf.task_default_queue

    def start(**env: str) -> Worker:
        """env: settings of the worker's own (RAG_EMBEDDING_MODEL="hashing:64")."""
        queue = f"test-{uuid.uuid4().hex[:8]}"
        app.conf.task_default_queue = queue
        started.append(Worker(queue, tmp_path / f"worker-{len(started)}.log"))
        started[-1].env.update(env)
        started[-1].start()
        return started[-1]

    yield start
    for worker in started:
        worker.kill()
    app.conf.task_default_queue = previous


@pytest.fixture
def worker(start_worker) -> Worker:
    """A Celery worker process sharing this test's database and data folder."""
    return start_worker()
