"""The committed notebooks are what notebooks/build.py writes (no hand edits that the next
build would lose), unexecuted."""

import importlib.util
import os

import nbformat

from tests.notebooks.execute import ROOT


def test_notebooks_match_their_build_script():
  spec = importlib.util.spec_from_file_location("build", os.path.join(ROOT, "notebooks", "build.py"))
  build = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(build)
  for name, cells in build.NOTEBOOKS.items():
    book = nbformat.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), as_version=4)
    assert [c.source for c in book.cells] == [c.source for c in cells], name
    assert all(not c.get("outputs") for c in book.cells), f"{name} is committed executed"
    assert "NOTEBOOK_BUDGET" in book.cells[2].source or "nb.budget" in book.cells[2].source
