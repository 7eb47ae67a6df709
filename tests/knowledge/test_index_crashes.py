"""A worker killed with SIGKILL while it publishes deltas and merges them leaves the last recorded
index version whole: `check_index` exits 0 afterwards, and the next worker carries on.

The worker is a real separate process with its own database and data folder (a SQLite file), so
nothing of the test's own database transaction is involved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

WORKER = """
import itertools, io, django
django.setup()
from knowledge import indexing, ingestion, uploads
from knowledge.models import KnowledgeBase
knowledge_base, _ = KnowledgeBase.objects.get_or_create(name="crash")
start = knowledge_base.documents.count()
for number in itertools.count(start):
    text = f"# Trip {number}\\n\\nMeal receipts of trip {number} are kept for ten years.\\n"
    upload = uploads.add_document(knowledge_base, f"trip-{number}.md", io.BytesIO(text.encode()))
    ingestion.ingest_document(upload.document.pk)  # publishes a delta under the lock
    indexing.merge_index(knowledge_base)  # merges when the deltas pile up (every 9th)
"""


def run(arguments: list[str], environment: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *arguments], cwd=REPO_ROOT, env=environment, **kwargs)


@pytest.mark.slow
def test_a_worker_killed_while_publishing_or_merging_leaves_a_consistent_index(tmp_path: Path):
    environment = {
        key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "CACHE_URL")
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="rag_site.settings",
        RAG_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        RAG_EMBEDDING_MODEL="hashing:64",
        RAG_LOCK_TIMEOUT="30",
    )
    assert run(["manage.py", "migrate", "-v", "0"], environment).wait(120) == 0
    seen: set[str] = set()  # every version folder seen (pruned ones go, so this counts them)

    def published() -> int:
        seen.update(path.name for path in (tmp_path / "indexes").glob("kb-*/v*"))
        return len(seen)

    rng = np.random.default_rng(3)
    for _ in range(3):
        worker = run(["-c", WORKER], environment)
        started = published()
        deadline = time.monotonic() + 120
        while published() < started + 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # until it publishes; then it does little else
        time.sleep(rng.uniform(0, 1.5))
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
        check = run(
            ["manage.py", "check_index", "--kb", "crash"],
            environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output = check.communicate(timeout=120)[0].decode()
        assert check.returncode == 0, output
    assert published() >= 6, "the workers published too little to have been killed publishing"
