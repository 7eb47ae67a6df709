"""The dependency rule: retrieval/ and generation/ never load Django."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_the_libraries_import_without_django():
    code = (
        "import sys, pkgutil, importlib, retrieval, generation\n"
        "for package in (retrieval, generation):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'knowledge'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
