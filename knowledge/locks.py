"""A per-knowledge-base lock that serialises index writes across processes and machines.

With REDIS_URL set it is a Redis lock whose short expiry is renewed by a watchdog thread while
the holder is alive, so a worker killed with SIGKILL frees it within seconds. Without Redis it is
an flock on a file under the data dir, which the kernel frees when the process dies.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis
from django.conf import settings

from .errors import LockTimeoutError

logger = logging.getLogger(__name__)

LOCK_EXPIRY_SECONDS = 15


@contextmanager
def knowledge_base_lock(
    knowledge_base_id: int, expiry: float = LOCK_EXPIRY_SECONDS
) -> Iterator[None]:
    """Hold the index-writing lock of one knowledge base for the duration of the block.

    expiry: seconds a Redis lock outlives a holder that died (renewed while it lives).
    """
    name = f"knowledge-base-{knowledge_base_id}"
    if settings.REDIS_URL:
        with _redis_lock(name, expiry):
            yield
    else:
        with _file_lock(name):
            yield


@contextmanager
def _redis_lock(name: str, expiry: float) -> Iterator[None]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    lock = client.lock(f"rag:lock:{name}", timeout=expiry, thread_local=False)
    if not lock.acquire(blocking=True, blocking_timeout=settings.RAG_LOCK_TIMEOUT):
        raise LockTimeoutError(f"Timed out waiting for the lock on {name}.")
    try:
        with renewing_every(expiry / 3, lock.reacquire, name=f"lock-watchdog-{name}"):
            yield
    finally:
        lock.release()
        client.close()


@contextmanager
def renewing_every(
    interval: float, renew: Callable[[], None], name: str, cleanup: Callable[[], None] | None = None
) -> Iterator[None]:
    """Call renew() every interval seconds from a thread while the block runs (a watchdog that
    keeps a lock or lease alive only as long as this process is). A renewal that fails (a busy
    database) is logged and tried again next round; callers choose an interval well inside
    their lease. cleanup() runs in that thread when it stops."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(interval):
                try:
                    renew()
                except Exception:  # e.g. SQLite busy: the next round tries again, in time
                    logger.warning("Could not renew %s; trying again in %.0f s", name, interval)
        finally:
            if cleanup:
                cleanup()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _file_lock(name: str) -> Iterator[None]:
    lock_dir = settings.RAG_DATA_DIR / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + settings.RAG_LOCK_TIMEOUT
    with open(lock_dir / f"{name}.lock", "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeoutError(f"Timed out waiting for the lock on {name}.") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
