"""Aggregates over seeds: the interquartile mean with a 95% bootstrap CI (rliable)."""

import numpy as np


def iqm_ci(scores: np.ndarray):
  """IQM over seeds and its 95% bootstrap CI per column: scores [seeds, E] -> 3 x [E].

  The bootstrap is seeded per column, so the same scores give the same CI. rliable 1.2.0's
  StratifiedBootstrap resamples with the global `np.random.choice` (its `random_state`
  has no effect on the draws, so none is passed), so the global generator is seeded for
  the call and then restored: callers' numpy draws are left as they were."""
  from rliable import library, metrics  # pylint: disable=import-outside-toplevel
  iqm, lo, hi = [], [], []
  saved = np.random.get_state()
  try:
    for col in scores.T:
      np.random.seed(0)
      point, ci = library.get_interval_estimates(
          {"x": col[:, None]}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=2000)
      iqm.append(point["x"][0])
      lo.append(ci["x"][0, 0])
      hi.append(ci["x"][1, 0])
  finally:
    np.random.set_state(saved)
  return np.array(iqm), np.array(lo), np.array(hi)
