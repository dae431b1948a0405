"""notebooks/props.ipynb runs top to bottom at the tiny budget (PROPS alone) and shows its
figures. One file per notebook, so that pytest-xdist spreads them over workers."""

import json

from tests.notebooks.execute import execute, images


def test_runs_at_the_tiny_budget(tmp_path):
  book = execute("props", tmp_path)
  summary = json.load(open(tmp_path / "props" / "summary.json"))
  assert summary, "no variants summarised"
  assert images(book) == 1         # our run beside our recorded figure
