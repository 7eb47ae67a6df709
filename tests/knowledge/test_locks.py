"""The per-knowledge-base lock serialises writers, with Redis and with the file lock."""

from __future__ import annotations

import os
import threading
import time

import pytest
import redis

from knowledge.locks import knowledge_base_lock

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            raise
        pytest.skip("no Redis server here (CI requires one)")


@pytest.fixture(params=["file", "redis"])
def backend(request, settings):
    if request.param == "redis":
        require_redis()
        settings.REDIS_URL = REDIS_URL
    else:
        settings.REDIS_URL = ""
    return request.param


def test_two_holders_of_one_knowledge_base_never_overlap(backend):
    events: list[str] = []

    def hold(name: str) -> None:
        with knowledge_base_lock(4242):
            events.append(f"{name} in")
            time.sleep(0.3)
            events.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert events in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_different_knowledge_bases_do_not_wait_for_each_other(backend):
    with knowledge_base_lock(1):
        started = time.monotonic()
        with knowledge_base_lock(2):
            assert time.monotonic() - started < 1


def test_a_lock_is_held_longer_than_its_expiry_while_its_holder_lives(settings):
    require_redis()
    settings.REDIS_URL = REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    with knowledge_base_lock(77, expiry=1):
        time.sleep(2.5)  # the watchdog renews it every third of a second
        assert client.exists("rag:lock:knowledge-base-77")
    assert not client.exists("rag:lock:knowledge-base-77")
