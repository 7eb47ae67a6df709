"""Versioned, atomically published index files of one knowledge base.

Layout: ROOT/kb-<id>/v<version>/{dense/, sparse/}. A version is written to a temporary
folder, fsynced and renamed into place; the caller then records the version (in the database),
so a reader that follows the recorded version never sees a half-written index.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .dense import FaissIndex
from .errors import IndexNotBuiltError
from .files import fsync_path
from .sparse import Bm25Index


@dataclass
class IndexPair:
    """The dense and sparse index of one knowledge base, which always hold the same chunk ids."""

    dense: FaissIndex
    sparse: Bm25Index


class IndexStore:
    """Reads and publishes versions of knowledge-base indexes under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, knowledge_base_id: int, version: int) -> Path:
        return self.root / f"kb-{knowledge_base_id}" / f"v{version}"

    def load(self, knowledge_base_id: int, version: int) -> IndexPair:
        """Load a published version. Raises IndexNotBuiltError if it is not on disk."""
        folder = self.folder(knowledge_base_id, version)
        if version <= 0 or not (folder / "dense").is_dir():
            raise IndexNotBuiltError(
                f"Index version {version} of knowledge base {knowledge_base_id} is not built."
            )
        return IndexPair(FaissIndex.load(folder / "dense"), Bm25Index.load(folder / "sparse"))

    def publish(self, knowledge_base_id: int, version: int, pair: IndexPair) -> Path:
        """Write pair as version, atomically. An unrecorded leftover of that version is replaced."""
        base = self.root / f"kb-{knowledge_base_id}"
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        pair.dense.save(staging / "dense")
        pair.sparse.save(staging / "sparse")
        fsync_path(staging)  # the indexes fsync their own files and folders
        target = self.folder(knowledge_base_id, version)
        if target.exists():  # written by a process that died before recording it
            shutil.rmtree(target)
        os.rename(staging, target)
        fsync_path(base)
        return target

    def prune(self, knowledge_base_id: int, current: int, keep: int = 2) -> None:
        """Delete versions older than the newest keep, and staging folders of dead writers."""
        base = self.root / f"kb-{knowledge_base_id}"
        if not base.exists():
            return
        for entry in base.iterdir():
            if entry.name.startswith(".staging-"):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith("v") and entry.name[1:].isdigit():
                version = int(entry.name[1:])
                if version <= current - keep or version > current:
                    shutil.rmtree(entry, ignore_errors=True)

    def drop(self, knowledge_base_id: int) -> None:
        shutil.rmtree(self.root / f"kb-{knowledge_base_id}", ignore_errors=True)
