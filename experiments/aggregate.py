"""Aggregates over seeds: the interquartile mean with a 95% bootstrap CI (rliable)."""

import numpy as np


def iqm_ci(scores: np.ndarray):
  """IQM over seeds and its 95% bootstrap CI per column: scores [seeds, E] -> 3 x [E].
  The bootstrap is seeded (RandomState(0) per column): the same scores give the same CI."""
  from rliable import library, metrics  # pylint: disable=import-outside-toplevel
  iqm, lo, hi = [], [], []
  for col in scores.T:
    point, ci = library.get_interval_estimates(
        {"x": col[:, None]}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=2000,
        random_state=np.random.RandomState(0))
    iqm.append(point["x"][0])
    lo.append(ci["x"][0, 0])
    hi.append(ci["x"][1, 0])
  return np.array(iqm), np.array(lo), np.array(hi)
