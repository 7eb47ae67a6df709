"""Versioned, atomically published index files of one knowledge base.

Layout: ROOT/kb-<id>/v<version>/ holds a base (dense/ and sparse/, the whole indexes as saved),
manifest.json and deltas/ (one IndexDelta file each, applied to the base in order). A full publish
writes a new base. A delta publish hard-links the base and the earlier deltas from the previous
version and writes only its own delta, so its cost does not grow with the knowledge base; prune
still deletes whole version folders, and a file lives while a version links it. Files are never
changed once written.

Every version is written to a temporary folder, fsynced and renamed into place; the caller then
records the version (in the database), so a reader that follows the recorded version never sees
a half-written index, and a writer killed at any point leaves the last recorded version whole.

A reader that holds version v applies only the deltas v+1 adds (`update`). `merge` keeps the
deltas few: it combines small ones, and folds them into a new base once they hold a tenth of
the base's chunks, so a full load never replays much. A version without manifest.json (written
before deltas existed) is a base alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .deltas import IndexDelta
from .dense import FaissIndex
from .errors import IndexMismatchError, IndexNotBuiltError
from .files import fsync_path
from .sparse import Bm25Index

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
MAX_DELTAS = 8  # a merge combines deltas once there are more than this many
FOLD_SHARE = 0.1  # deltas fold into a new base once they hold this share of the base's chunks
FOLD_MINIMUM = 1000  # ... and at least this many rows


@dataclass
class IndexPair:
    """The dense and sparse index of one knowledge base, which always hold the same chunk ids.

    `root` and `applied` say what the pair holds: the base of a full publish (`root`) and the
    deltas applied to it since, up to number `applied`; `IndexStore.update` reads them.
    """

    dense: FaissIndex
    sparse: Bm25Index
    root: str = ""
    applied: int = 0


@dataclass
class DeltaEntry:
    """One delta file of a version: it combines the deltas numbered first..last."""

    first: int
    last: int
    rows: int

    @property
    def name(self) -> str:
        return f"d{self.first:09d}-{self.last:09d}.npz"


@dataclass
class Manifest:
    """What a version is made of: the base (from the full publish `root`, holding the deltas
    up to `base_covers` and `base_chunks` chunks) and the deltas after it, oldest first."""

    root: str
    base_covers: int = 0
    base_chunks: int = 0
    deltas: list[DeltaEntry] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.deltas[-1].last if self.deltas else self.base_covers

    @property
    def delta_rows(self) -> int:
        return sum(entry.rows for entry in self.deltas)

    def needs_merge(self) -> bool:
        """True when there are too many deltas, or they hold too much to replay on a full load."""
        return len(self.deltas) > MAX_DELTAS or self.delta_rows > self.fold_limit()

    def fold_limit(self) -> int:
        return max(FOLD_MINIMUM, int(FOLD_SHARE * self.base_chunks))


class IndexStore:
    """Reads and publishes versions of knowledge-base indexes under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, knowledge_base_id: int, version: int) -> Path:
        return self.root / f"kb-{knowledge_base_id}" / f"v{version}"

    def manifest(self, knowledge_base_id: int, version: int) -> Manifest:
        """The manifest of a published version. Raises IndexNotBuiltError if it is not on disk."""
        folder = self._existing(knowledge_base_id, version)
        path = folder / MANIFEST_FILE
        if not path.is_file():  # a base alone, published before deltas existed
            meta = json.loads((folder / "dense" / "dense.json").read_text(encoding="utf-8"))
            return Manifest(f"legacy-{knowledge_base_id}-{version}", 0, int(meta["count"]))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"manifest format {data.get('format')}")
            deltas = [DeltaEntry(**entry) for entry in data["deltas"]]
            return Manifest(data["root"], data["base_covers"], data["base_chunks"], deltas)
        except (ValueError, KeyError, TypeError) as error:
            raise IndexMismatchError(
                f"The manifest of index version {version} of knowledge base {knowledge_base_id} "
                "is damaged; rebuild the index."
            ) from error

    def load(self, knowledge_base_id: int, version: int) -> IndexPair:
        """Load a published version: its base, then its deltas.

        Raises IndexNotBuiltError if it is not on disk.
        """
        manifest = self.manifest(knowledge_base_id, version)
        folder = self.folder(knowledge_base_id, version)
        pair = IndexPair(FaissIndex.load(folder / "dense"), Bm25Index.load(folder / "sparse"))
        pair.root, pair.applied = manifest.root, manifest.base_covers
        self._apply_deltas(folder, manifest, pair)
        return pair

    def update(self, knowledge_base_id: int, version: int, pair: IndexPair) -> IndexPair:
        """Bring a loaded pair to version: in place, by applying only the deltas it lacks, when
        the version extends what the pair holds; else (a rebuild, or a merge that folded deltas
        the pair never saw) a fresh full load. Returns the pair that holds the version.

        The pair is changed while other threads may search it: each index serialises its
        searches and changes, and a search between two changes sees an older or newer state.
        """
        manifest = self.manifest(knowledge_base_id, version)
        if manifest.root != pair.root or manifest.base_covers > pair.applied:
            return self.load(knowledge_base_id, version)
        self._apply_deltas(self.folder(knowledge_base_id, version), manifest, pair)
        return pair

    def _apply_deltas(self, folder: Path, manifest: Manifest, pair: IndexPair) -> None:
        for entry in manifest.deltas:
            if entry.last > pair.applied:  # a combined delta may also hold some applied ones
                IndexDelta.load(folder / "deltas" / entry.name).apply(pair)
                pair.applied = entry.last

    def publish(self, knowledge_base_id: int, version: int, pair: IndexPair) -> Path:
        """Write pair as version, whole and atomically, as a new root: readers load it afresh.
        An unrecorded leftover of that version is replaced."""
        manifest = Manifest(uuid.uuid4().hex, 0, len(pair.dense))
        target = self._write(knowledge_base_id, version, manifest, lambda staging: None, pair)
        pair.root, pair.applied = manifest.root, 0
        return target

    def publish_delta(
        self, knowledge_base_id: int, version: int, previous: int, delta: IndexDelta
    ) -> Path:
        """Publish version as the previous version plus delta, atomically, writing only the
        delta's files (the rest is hard-linked).

        Raises:
            IndexNotBuiltError: if the previous version is not on disk (publish a full one).
        """
        manifest = self.manifest(knowledge_base_id, previous)
        source = self.folder(knowledge_base_id, previous)
        entry = DeltaEntry(manifest.last + 1, manifest.last + 1, len(delta))
        manifest.deltas.append(entry)

        def fill(staging: Path) -> None:
            _link_tree(source, staging, manifest.deltas[:-1])
            delta.save(staging / "deltas" / entry.name)
            fsync_path(staging / "deltas")

        return self._write(knowledge_base_id, version, manifest, fill)

    def merge(self, knowledge_base_id: int, version: int, new_version: int) -> bool:
        """Publish new_version with version's deltas merged, if its manifest needs it: folded
        into a new base once they hold too many rows, else combined into fewer deltas. The
        chunks are the same; readers holding version pick new_version up without loading.
        Returns whether new_version was published."""
        manifest = self.manifest(knowledge_base_id, version)
        if not manifest.needs_merge():
            return False
        if manifest.delta_rows > manifest.fold_limit():
            pair = self.load(knowledge_base_id, version)
            folded = Manifest(manifest.root, manifest.last, len(pair.dense))
            self._write(knowledge_base_id, new_version, folded, lambda staging: None, pair)
            return True
        source = self.folder(knowledge_base_id, version)
        groups = combined_groups(manifest.deltas)
        merged = Manifest(manifest.root, manifest.base_covers, manifest.base_chunks)
        merged.deltas = [_joined_entry(group) for group in groups]

        def fill(staging: Path) -> None:
            _link_tree(source, staging, [group[0] for group in groups if len(group) == 1])
            for group, entry in zip(groups, merged.deltas, strict=True):
                if len(group) > 1:
                    deltas = [IndexDelta.load(source / "deltas" / part.name) for part in group]
                    combined = deltas[0]
                    for later in deltas[1:]:
                        combined = combined.then(later)
                    entry.rows = len(combined)
                    combined.save(staging / "deltas" / entry.name)
            fsync_path(staging / "deltas")

        self._write(knowledge_base_id, new_version, merged, fill)
        return True

    def _write(
        self,
        knowledge_base_id: int,
        version: int,
        manifest: Manifest,
        fill: Callable[[Path], None],
        pair: IndexPair | None = None,
    ) -> Path:
        """Write a version folder in a staging folder (the base from pair, or linked by fill),
        then the manifest, fsync, and rename it into place."""
        base = self.root / f"kb-{knowledge_base_id}"
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        if pair is not None:
            pair.dense.save(staging / "dense")
            pair.sparse.save(staging / "sparse")
        fill(staging)
        _write_manifest(staging / MANIFEST_FILE, manifest)
        fsync_path(staging)  # the indexes and deltas fsync their own files and folders
        target = self.folder(knowledge_base_id, version)
        if target.exists():  # written by a process that died before recording it
            shutil.rmtree(target)
        os.rename(staging, target)
        fsync_path(base)
        return target

    def _existing(self, knowledge_base_id: int, version: int) -> Path:
        folder = self.folder(knowledge_base_id, version)
        if version <= 0 or not (folder / "dense").is_dir():
            raise IndexNotBuiltError(
                f"Index version {version} of knowledge base {knowledge_base_id} is not built."
            )
        return folder

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


def combined_groups(deltas: list[DeltaEntry]) -> list[list[DeltaEntry]]:
    """Adjacent deltas grouped for combining: the two neighbours with the fewest rows together
    go into one, until half of MAX_DELTAS are left, so each row is rewritten about log times."""
    groups = [[entry] for entry in deltas]
    while len(groups) > MAX_DELTAS // 2:
        sizes = [sum(entry.rows for entry in group) for group in groups]
        i = min(range(len(groups) - 1), key=lambda j: sizes[j] + sizes[j + 1])
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
    return groups


def _joined_entry(group: list[DeltaEntry]) -> DeltaEntry:
    return DeltaEntry(group[0].first, group[-1].last, sum(entry.rows for entry in group))


def _link_tree(source: Path, staging: Path, deltas: list[DeltaEntry]) -> None:
    """Hard-link the base of source and the given delta files into staging, whose deltas/
    folder is made for the caller to add to and fsync."""
    for part in ("dense", "sparse"):
        (staging / part).mkdir()
        for file in (source / part).iterdir():
            os.link(file, staging / part / file.name)
        fsync_path(staging / part)
    (staging / "deltas").mkdir()
    for entry in deltas:
        os.link(source / "deltas" / entry.name, staging / "deltas" / entry.name)


def _write_manifest(path: Path, manifest: Manifest) -> None:
    data = {"format": MANIFEST_FORMAT, **asdict(manifest)}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
