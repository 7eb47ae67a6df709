"""`make run`'s serving part (manage.py serve): the web server and a real Celery worker start,
the login line comes last once both are ready, and Ctrl-C (or TERM) stops both, once, with a
few lines of output rather than thousands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READY_LINE = "Ctrl-C stops the web server and the worker."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every process below pid (children, and the worker's pool processes below them)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def site_env(tmp_path_factory) -> dict[str, str]:
    """A data folder of its own: SQLite and the file broker, never the suite's services."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CACHE_URL", "RAG_BROKER_DIR"}
    }
    env.update(
        RAG_DATA_DIR=str(tmp_path_factory.mktemp("serve") / "var"),
        RAG_EMBEDDING_MODEL="hashing:64",
        RAG_CELERY_QUEUE=f"serve-{time.monotonic_ns()}",
        PYTHONUNBUFFERED="1",
    )
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "-v", "0"], ["bootstrap_demo"]):
        subprocess.run([*manage, *command], cwd=REPO_ROOT, env=env, check=True, timeout=300)
    return env


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_the_login_last_and_one_signal_stops_both_once(site_env, stop_signal):
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
        cwd=REPO_ROOT,
        env=site_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(serve.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(READY_LINE in line for line in lines):
            assert serve.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        time.sleep(1)  # anything printed late would now follow the login line
        before = [line.rstrip("\n") for line in lines]
        children = descendants(serve.pid)
        assert len(children) >= 3, children  # web server, worker and its pool process
        serve.send_signal(stop_signal)
        serve.wait(60)
    finally:
        if serve.poll() is None:
            serve.kill()
    reader.join(5)
    after = [line.rstrip("\n") for line in lines[len(before) :]]
    output = "\n".join(before + after)

    assert before[-1] == READY_LINE, output
    assert before[-2].startswith(f"Log in at http://127.0.0.1:{port}/ as 'admin' with password")
    assert "No hostname was supplied" not in output
    assert serve.returncode == 0, output
    assert 2 <= len(after) <= 8, after  # a few lines, not thousands
    assert after[0] == "Stopping the web server and the worker…"
    assert after[-1] == "Stopped."
    assert sum("Warm shutdown" in line for line in after) == 1, after
    for problem in ("Traceback", "RecursionError", "Segmentation fault", "lost sys.stderr"):
        assert problem not in output
    assert not [pid for pid in children if alive(pid)], "a child outlived serve"
