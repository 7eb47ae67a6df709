"""Progress bars for the long commands (ingest, import_eval_dataset, evaluate, bench.judge): counts,
rate and the time left, on stderr. Also when stderr is not a terminal (`make eval | tee log`),
where tqdm's default would show nothing at all; there it redraws every few seconds instead of
ten times a second. No Django here, so that bench scripts may use it too."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

QUIET_REDRAW_SECONDS = 5.0  # how often a bar redraws when stderr is a file or a pipe


def progress(iterable: Iterable[T] | None = None, **options: Any) -> tqdm:
    """A tqdm bar over iterable (or one updated by hand, with total=)."""
    interactive = sys.stderr.isatty()
    options.setdefault("file", sys.stderr)
    options.setdefault("dynamic_ncols", interactive)
    options.setdefault("mininterval", 0.1 if interactive else QUIET_REDRAW_SECONDS)
    return tqdm(iterable, **options)
