"""notebooks/ailboost.ipynb runs top to bottom at the tiny budget (demonstrations, then
AILBoost) and shows its figures. One file per notebook, so that pytest-xdist spreads
them over workers."""

import json

from tests.notebooks.execute import execute, images


def test_runs_at_the_tiny_budget(tmp_path):
  book = execute("ailboost", tmp_path)
  for agent in ("ailboost",):                # the tiny budget trains AILBoost alone
    assert json.load(open(tmp_path / "ailboost" / agent / "summary.json"))["finished"], agent
  assert images(book) == 1         # our run beside our recorded figure
