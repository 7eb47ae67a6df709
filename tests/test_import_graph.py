"""The import graph: no cycles among knowledge/ modules and no upward imports (checked by
`python -m tests.import_graph`, which CI and a developer run the same way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.import_graph import report


def test_the_project_has_no_import_cycle_and_no_upward_import():
    result = subprocess.run(
        [sys.executable, "-m", "tests.import_graph"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith(
        "0 problem(s) in the import graph of rag_site, knowledge, generation, retrieval."
    )


def write(root: Path, module: str, source: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(root).parents:
        if str(parent) != ".":
            (root / parent / "__init__.py").touch()
    path.write_text(source)


def test_the_check_finds_a_cycle_hidden_in_a_function_and_upward_imports(tmp_path):
    for package in ("rag_site", "generation"):
        write(tmp_path, f"{package}.empty", "")
    write(tmp_path, "knowledge.search", "from . import indexing\n")
    write(tmp_path, "knowledge.indexing", "def later():\n    from .search import run\n")
    write(tmp_path, "knowledge.models", "from knowledge.views import page\n")
    write(tmp_path, "knowledge.views", "import json\n")
    write(tmp_path, "retrieval.dense", "import generation.prompts\n")
    write(tmp_path, "generation.prompts", "from retrieval.dense import FaissIndex\n")
    assert report(tmp_path) == [
        "cycle: knowledge.indexing <-> knowledge.search",
        "generation.prompts imports retrieval.dense: generation takes only types and text",
        "knowledge.models imports knowledge.views from a layer above it",
        "retrieval.dense imports generation.prompts from a layer above it",
    ]
