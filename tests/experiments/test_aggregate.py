"""iqm_ci: rliable's interquartile mean and a bootstrap CI that the same scores reproduce."""
import numpy as np

from experiments.aggregate import iqm_ci

SCORES = np.array([[56.0, 1.0], [94.9, 2.0], [55.5, 3.0], [100.0, 4.0], [65.1, 5.0],
                   [70.0, 6.0], [58.0, 7.0], [99.0, 8.0]])


def test_iqm_is_the_mean_of_the_middle_half():
  iqm, lo, hi = iqm_ci(SCORES)
  middle = np.sort(SCORES, axis=0)[2:6]          # 8 seeds: drop 2 at each end
  np.testing.assert_allclose(iqm, middle.mean(0))
  assert (lo <= iqm).all() and (iqm <= hi).all()
  assert (lo >= SCORES.min(0)).all() and (hi <= SCORES.max(0)).all()


def test_same_scores_give_the_same_ci_and_the_global_generator_is_left_alone():
  """rliable 1.2.0 resamples with the global np.random, whatever its random_state says."""
  first = iqm_ci(SCORES)
  np.random.seed(123)
  expected_next = np.random.rand(3)
  np.random.seed(123)
  again = iqm_ci(SCORES)
  np.testing.assert_array_equal(np.random.rand(3), expected_next)
  np.random.rand(17)                               # a different global state
  third = iqm_ci(SCORES)
  for a, b, c in zip(first, again, third):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
