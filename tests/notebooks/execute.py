"""Executes a notebook of notebooks/ top to bottom at the tiny budget, as CI does."""

import os

import nbclient
import nbformat

from tests.experiments import binary

ROOT = binary.ROOT


def execute(name: str, runs, **env) -> nbformat.NotebookNode:
  """Runs notebooks/<name>.ipynb with NOTEBOOK_BUDGET=tiny, NOTEBOOK_RUNS=`runs` (its
  outputs go to runs/<...>) and `env`, sharing the test run's compilation cache -> the
  executed notebook. A failing cell raises nbclient's CellExecutionError with its
  traceback."""
  book = nbformat.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), as_version=4)
  client = nbclient.NotebookClient(book, timeout=900, kernel_name="python3",
                                   resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}})
  client.execute(env=binary.environ(NOTEBOOK_BUDGET="tiny", NOTEBOOK_RUNS=str(runs), **env))
  return book


def images(book: nbformat.NotebookNode) -> int:
  """The number of images the executed notebook displays."""
  return sum("image/png" in out.get("data", {}) for cell in book.cells
             if cell.cell_type == "code" for out in cell.outputs)


def stream_text(book: nbformat.NotebookNode) -> str:
  """Everything the executed notebook's cells printed."""
  return "".join(out.get("text", "") for cell in book.cells if cell.cell_type == "code"
                 for out in cell.outputs if out.get("output_type") == "stream")
