"""TQ and SACo (Schweighofer et al. 2022) on hand-made datasets."""

import numpy as np
import pytest

from evaluation import dataset_measures as dm
from evaluation.data import LoggedData


def _data(obs, action, reward, terminated, truncated):
  f = lambda x: np.asarray(x, np.float32)
  return LoggedData(obs=f(obs)[..., None], action=f(action)[..., None], reward=f(reward),
                    terminated=np.asarray(terminated, bool), truncated=np.asarray(truncated, bool),
                    behavior_log_prob=np.zeros(np.shape(reward), np.float32))


REFERENCE = _data([[0, 1, 2, 4]], [[0, 0, 0, 4]], [[0, 0, 0, 0]], [[0, 0, 0, 0]], [[0, 0, 0, 1]])
# first trajectory terminates at t = 1 (t = 2, 3 are padding, with values that would add
# cells and return if counted); the second is truncated at the horizon
DATA = _data([[0.5, 0.7, 9, 9], [-1, 3.5, 3.9, 0.9]], [[0.1, 0.2, 9, 9], [0, 0, 0, 0]],
             [[1, 2, 100, 100], [1, 1, 1, 1]], [[0, 1, 0, 0], [0, 0, 0, 0]],
             [[0, 0, 0, 0], [0, 0, 0, 1]])


def test_trajectory_quality_by_hand():
  # returns 3 and 4 -> mean 3.5; (3.5 − 1) / (6 − 1)
  np.testing.assert_allclose(dm.episode_returns(DATA), [3, 4])
  assert dm.trajectory_quality(DATA, 1.0, 6.0) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="different"):
    dm.trajectory_quality(DATA, 2.0, 2.0)


def test_saco_by_hand():
  # reference limits [0, 4] in both dims -> edges 0, 1, 2, 3, 4.
  # reference cells (obs, action): (1,1) (2,1) (3,1) (5,5) -> 4
  # data cells: (1,1) (1,1) | (0,1) (4,1) (4,1) (1,1) -> 3 distinct
  low, high = dm.coverage_limits(REFERENCE)
  np.testing.assert_allclose(low, [0, 0])
  np.testing.assert_allclose(high, [4, 4])
  assert dm.unique_state_actions(REFERENCE, (low, high)) == 4
  assert dm.unique_state_actions(DATA, (low, high)) == 3
  assert dm.saco(DATA, REFERENCE) == pytest.approx(0.75)
  assert dm.saco(REFERENCE, REFERENCE) == 1.0
  # at most 3 transitions: a seeded subset of the 6 valid rows, kept in storage order
  rows = dm.state_actions(DATA)
  subset = dm.state_actions(DATA, max_transitions=3)
  assert len(rows) == 6 and len(subset) == 3
  assert all(any((r == x).all() for x in rows) for r in subset)
  np.testing.assert_array_equal(subset, dm.state_actions(DATA, max_transitions=3))
  assert 1 <= dm.unique_state_actions(DATA, (low, high), max_transitions=3) <= 3
  # 11 edges, 0.4 apart: 0.5 and 0.7 still share a cell, 3.5 | 3.9 and 0.9 | 0.5 part:
  # (2,1) (2,1) | (0,1) (9,1) (10,1) (3,1) -> 5
  assert dm.unique_state_actions(DATA, (low, high), bins=11) == 5
