"""A worker killed with SIGKILL while it publishes deltas and merges them leaves the last recorded
index version whole: `check_index` exits 0 afterwards, and the next worker carries on. One test
kills at random moments of a stream of publishes and merges; the other watches the version being
written and kills inside it, so that a kill inside a delta publish and inside a merge is certain.

The worker is a real separate process with its own database and data folder (a SQLite file), so
nothing of the test's own database transaction is involved."""

from __future__ import annotations

import os
import re
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
    environment = crash_environment(tmp_path)
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
        check_index(environment)
    assert published() >= 6, "the workers published too little to have been killed publishing"


STEPPING_WORKER = """
import io, sys, django
django.setup()
from knowledge import indexing, ingestion, uploads
from knowledge.components import get_index_store
from knowledge.models import KnowledgeBase
knowledge_base, _ = KnowledgeBase.objects.get_or_create(name="crash")
number = knowledge_base.documents.count()

def say(step):  # what comes next, with the version recorded before it
    knowledge_base.refresh_from_db()
    print(step, knowledge_base.index_version, flush=True)

while True:
    receipt = "## Receipt {0}\\n\\nMeal receipt {0} of trip {1} is kept."
    receipts = [receipt.format(i, number) for i in range(150)]
    text = f"# Trip {number}\\n\\n" + "\\n\\n".join(receipts)
    upload = uploads.add_document(knowledge_base, f"trip-{number}.md", io.BytesIO(text.encode()))
    number += 1
    say("publish")
    ingestion.ingest_document(upload.document.pk)  # a delta of 150 chunks, under the lock
    knowledge_base.refresh_from_db()
    if get_index_store().manifest(knowledge_base.pk, knowledge_base.index_version).needs_merge():
        say("merge")
        indexing.merge_index(knowledge_base)  # folds the deltas into a new base
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", ["publish", "merge"])
def test_a_worker_killed_inside_a_delta_publish_or_a_merge_leaves_the_recorded_version(
    tmp_path: Path, step: str
):
    environment = crash_environment(tmp_path)
    assert run(["manage.py", "migrate", "-v", "0"], environment).wait(120) == 0
    folder = tmp_path / "indexes"
    killed_inside = 0
    for _ in range(8):
        worker = run(["-c", STEPPING_WORKER], environment, stdout=subprocess.PIPE, text=True)
        recorded = wait_for_step(worker, step)
        earlier = set(folder.glob("kb-*/.staging-*"))  # left by the workers killed before
        staging: set[Path] = set()
        while not staging and worker.poll() is None:  # until the step writes its version
            staging = set(folder.glob("kb-*/.staging-*")) - earlier
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        output = check_index(environment)
        version = int(re.search(r"version (\d+)", output).group(1))
        if staging and all(path.exists() for path in staging):  # killed before the rename
            assert version == recorded, output
            killed_inside += 1
        if killed_inside >= 2:
            break
    assert killed_inside >= 2, f"no kill landed inside a {step}"


def check_index(environment: dict[str, str]) -> str:
    """Run `manage.py check_index` on the crashed worker's knowledge base: it must exit 0."""
    check = run(
        ["manage.py", "check_index", "--kb", "crash"],
        environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = check.communicate(timeout=120)[0].decode()
    assert check.returncode == 0, output
    return output


def crash_environment(tmp_path: Path) -> dict[str, str]:
    """A worker of its own: a SQLite database and a data folder under tmp_path."""
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
    return environment


def wait_for_step(worker: subprocess.Popen, step: str) -> int:
    """Read the worker's lines until it is about to take step on a recorded version (a delta
    publish builds on one; the first publish is a whole version); that version."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = worker.stdout.readline()
        assert line, f"the worker stopped before a {step}"
        name, version = line.split()
        if name == step and int(version) > 0:
            return int(version)
    raise AssertionError(f"the worker took no {step} in 120 seconds")
