"""notebooks/offline_rl.ipynb runs top to bottom at the tiny budget (a dataset, then TD3+BC
on its medium level) and shows its figures. One file per notebook, so that pytest-xdist
spreads them over workers."""

import json

from tests.notebooks.execute import execute, images


def test_runs_at_the_tiny_budget(tmp_path):
  book = execute("offline_rl", tmp_path)
  for agent in ("td3_bc",):                  # the tiny budget trains TD3+BC alone
    for level in ("medium",):
      summary = json.load(open(tmp_path / "offline" / f"{agent}_{level}" / "summary.json"))
      assert len(summary["final_normalized_score"]) == 2, (agent, level)
  assert images(book) == 1         # the papers' scores beside ours
