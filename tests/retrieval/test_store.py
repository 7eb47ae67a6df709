"""Published index versions: full and delta publishes, incremental loading, merges, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from retrieval.deltas import IndexDelta
from retrieval.dense import FaissIndex
from retrieval.errors import IndexNotBuiltError
from retrieval.sparse import Bm25Index
from retrieval.store import MAX_DELTAS, IndexPair, IndexStore
from tests.conftest import REPO_ROOT
from tests.retrieval.test_indexes import DIMENSION, hashing_embeddings

WORDS = ["cats", "dogs", "owls", "bees", "fish", "horses", "rabbits", "mice", "birds", "whales"]
WORDS += ["sing", "bark", "hunt", "swim", "run", "dig"]
QUERIES = ["cats bark", "owls hunt mice", "whales sing and swim", "bees dig", "horses run fast"]
KB = 3


def text_of(chunk_id: int) -> str:
    rng = np.random.default_rng(chunk_id)
    return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))


def delta_of(added: list[int], deleted: list[int] = ()) -> IndexDelta:
    texts = [text_of(i) for i in added]
    vectors = hashing_embeddings(texts) if texts else np.zeros((0, DIMENSION), np.float32)
    return IndexDelta.of(added, vectors, texts, deleted)


def pair_of(ids, ann_threshold: int = 0) -> IndexPair:
    pair = IndexPair(FaissIndex(DIMENSION, ann_threshold=ann_threshold), Bm25Index())
    delta_of(sorted(ids)).apply(pair)
    return pair


def assert_same_results(pair: IndexPair, expected: IndexPair) -> None:
    """Same ids, and the same hits with the same scores (to float tolerance) for every query."""
    np.testing.assert_array_equal(pair.dense.ids(), expected.dense.ids())
    np.testing.assert_array_equal(pair.sparse.ids(), expected.sparse.ids())
    for query in QUERIES:
        for index, reference, probe in (
            (pair.sparse, expected.sparse, query),
            (pair.dense, expected.dense, hashing_embeddings([query])[0]),
        ):
            hits, wanted = index.search(probe, k=20), reference.search(probe, k=20)
            assert [hit.chunk_id for hit in hits] == [hit.chunk_id for hit in wanted]
            assert [hit.score for hit in hits] == pytest.approx([hit.score for hit in wanted])


@pytest.fixture
def store(tmp_path: Path) -> IndexStore:
    return IndexStore(tmp_path / "indexes")


def test_a_version_of_deltas_searches_like_one_index_of_the_same_chunks(store) -> None:
    store.publish(KB, 1, pair_of(range(1, 41)))
    store.publish_delta(KB, 2, 1, delta_of([41, 42, 43], deleted=[5, 6]))
    store.publish_delta(KB, 3, 2, delta_of([7, 44], deleted=[42, 999]))  # 7 replaced
    store.publish_delta(KB, 4, 3, delta_of([], deleted=[1, 2, 3]))
    expected = pair_of([i for i in range(4, 45) if i not in (5, 6, 42)])
    assert_same_results(store.load(KB, 4), expected)


def test_a_reader_applies_only_the_new_delta_to_the_pair_it_holds(store) -> None:
    store.publish(KB, 1, pair_of(range(1, 31)))
    reader = store.load(KB, 1)
    store.publish_delta(KB, 2, 1, delta_of([31, 32], deleted=[4]))
    updated = store.update(KB, 2, reader)
    assert updated is reader
    assert {31, 32} <= set(reader.sparse.ids().tolist()) and 4 not in reader.dense.ids()
    assert_same_results(reader, store.load(KB, 2))


def test_a_reader_loads_afresh_after_a_full_publish(store) -> None:
    store.publish(KB, 1, pair_of(range(1, 11)))
    reader = store.load(KB, 1)
    store.publish(KB, 2, pair_of(range(20, 30)))
    updated = store.update(KB, 2, reader)
    assert updated is not reader
    assert updated.dense.ids().tolist() == list(range(20, 30))


def test_a_delta_version_links_the_files_of_the_previous_one_and_writes_only_its_delta(store):
    store.publish(KB, 1, pair_of(range(1, 31)))
    store.publish_delta(KB, 2, 1, delta_of([31]))
    store.publish_delta(KB, 3, 2, delta_of([32]))
    old, new = store.folder(KB, 2), store.folder(KB, 3)
    for file in [*old.glob("dense/*"), *old.glob("sparse/*"), *old.glob("deltas/*")]:
        assert os.path.samefile(file, new / file.relative_to(old))
    own = {path.name for path in new.glob("*/*") if path.stat().st_nlink == 1}
    assert own == {"d000000002-000000002.npz"}
    store.prune(KB, 3, keep=1)
    assert not old.exists()
    assert_same_results(store.load(KB, 3), pair_of(range(1, 33)))


def test_a_version_written_before_manifests_loads_and_takes_deltas(store) -> None:
    legacy = store.folder(KB, 5)
    pair = pair_of(range(1, 21))
    pair.dense.save(legacy / "dense")
    pair.sparse.save(legacy / "sparse")
    reader = store.load(KB, 5)
    store.publish_delta(KB, 6, 5, delta_of([21], deleted=[1]))
    assert store.update(KB, 6, reader) is reader
    assert_same_results(reader, pair_of(range(2, 22)))


def test_a_delta_needs_a_published_version_to_build_on(store) -> None:
    with pytest.raises(IndexNotBuiltError):
        store.publish_delta(KB, 1, 0, delta_of([1]))


@pytest.mark.slow
def test_merges_keep_the_deltas_few_over_500_documents_added_one_by_one(store) -> None:
    store.publish(KB, 1, pair_of([], ann_threshold=300))
    reader, version, present = store.load(KB, 1), 1, set()
    most = 0
    for document in range(500):
        added = list(range(10 * document + 1, 10 * document + 11))
        deleted = [10 * (document - 3) + 1] if document % 7 == 6 else []  # a chunk of an older one
        store.publish_delta(KB, version + 1, version, delta_of(added, deleted))
        version += 1
        present = (present | set(added)) - set(deleted)
        most = max(most, len(store.manifest(KB, version).deltas))
        if store.manifest(KB, version).needs_merge():
            assert store.merge(KB, version, version + 1)
            version += 1
        store.prune(KB, version)
        reader = store.update(KB, version, reader)
    manifest = store.manifest(KB, version)
    assert most <= MAX_DELTAS + 1 and len(manifest.deltas) <= MAX_DELTAS
    assert manifest.base_covers > 0  # deltas were folded into a new base
    assert set(reader.dense.ids().tolist()) == present
    assert reader.dense.kind == "ivf"
    assert_same_results(store.load(KB, version), reader)


def test_a_merge_that_folds_deltas_leaves_readers_nothing_to_load(store) -> None:
    store.publish(KB, 1, pair_of(range(1, 11)))
    store.publish_delta(KB, 2, 1, delta_of(list(range(11, 1200))))
    reader = store.load(KB, 2)
    assert store.merge(KB, 2, 3)
    manifest = store.manifest(KB, 3)
    assert manifest.deltas == [] and manifest.base_chunks == 1199
    assert store.update(KB, 3, reader) is reader
    assert not store.merge(KB, 3, 4)


CHILD = """
import json, os, sys
sys.path.insert(0, {repo!r})
from tests.retrieval.test_store import KB, delta_of
from retrieval.store import IndexStore
store, record = IndexStore({root!r}), {record!r}
recorded = json.load(open(record))
version, first = recorded["version"], recorded["next"]
while True:
    store.publish_delta(KB, version + 1, version, delta_of(list(range(first, first + 10))))
    version, first = version + 1, first + 10
    if {merge} and store.manifest(KB, version).needs_merge():
        store.merge(KB, version, version + 1)
        version += 1
    with open(record + ".tmp", "w") as handle:  # what the database does: record the version
        json.dump({{"version": version, "next": first}}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(record + ".tmp", record)
"""


@pytest.mark.parametrize("merge", [False, True], ids=["delta-publish", "merge"])
def test_a_writer_killed_while_publishing_leaves_the_last_recorded_version_whole(
    store, tmp_path, merge
) -> None:
    record = tmp_path / "recorded.json"
    store.publish(KB, 1, pair_of(range(1, 11)))
    record.write_text(json.dumps({"version": 1, "next": 11}))
    script = CHILD.format(
        repo=str(REPO_ROOT), root=str(store.root), record=str(record), merge=merge
    )
    rng = np.random.default_rng(7)
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
        time.sleep(1.5 + rng.uniform(0, 1.5))  # the child spends nearly all its time publishing
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        recorded = json.loads(record.read_text())
        version = recorded["version"]
        pair = store.load(KB, version)
        assert set(pair.dense.ids().tolist()) == set(range(1, recorded["next"]))
        assert set(pair.sparse.ids().tolist()) == set(range(1, recorded["next"]))
    assert version > 1
    store.prune(KB, version)
    assert not list((store.root / f"kb-{KB}").glob(".staging-*"))
