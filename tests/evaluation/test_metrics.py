"""Assessment metrics on hand-computed examples."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from evaluation import metrics as m

EST = jnp.array([3.0, 1.0, 2.0, 5.0, 4.0])
TRUE = jnp.array([10.0, 20.0, 15.0, 8.0, 12.0])
BEHAVIOR = 9.0
# Estimated order: candidates 3, 4, 0, 2, 1 -> true values 8, 12, 10, 15, 20.


def test_accuracy_metrics():
  np.testing.assert_allclose(m.mse(EST, TRUE), 652 / 5, rtol=1e-6)
  np.testing.assert_allclose(m.relative_error(EST, TRUE),
                             (7 / 10 + 19 / 20 + 13 / 15 + 3 / 8 + 8 / 12) / 5, rtol=1e-6)
  np.testing.assert_allclose(m.rank_correlation(EST, TRUE), 1 - 6 * 38 / (5 * 24), rtol=1e-6)
  np.testing.assert_allclose(m.rank_correlation(TRUE, TRUE), 1.0, rtol=1e-6)


def test_rank_correlation_with_ties_uses_average_ranks():
  # ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; against [1, 2, 3, 4] Pearson gives 0.9487
  np.testing.assert_allclose(m.rank_correlation(jnp.array([1.0, 2, 2, 3]), jnp.array([1.0, 2, 3, 4])),
                             4.5 / np.sqrt(4.5 * 5), rtol=1e-5)


def test_at_k_two_by_hand():
  assert m.top_k(EST, 2).tolist() == [3, 4]
  assert float(m.best_at_k(EST, TRUE, 2)) == 12 and float(m.worst_at_k(EST, TRUE, 2)) == 8
  assert float(m.mean_at_k(EST, TRUE, 2)) == 10
  np.testing.assert_allclose(m.std_at_k(EST, TRUE, 2), math.sqrt(8), rtol=1e-6)
  np.testing.assert_allclose(m.sharpe_ratio_at_k(EST, TRUE, BEHAVIOR, 2), 3 / math.sqrt(8), rtol=1e-6)
  np.testing.assert_allclose(m.regret_at_k(EST, TRUE, 2), (20 + 15) - (8 + 12), rtol=1e-6)


def test_at_k_all_candidates_by_hand():
  k = 5
  assert float(m.best_at_k(EST, TRUE, k)) == 20 and float(m.worst_at_k(EST, TRUE, k)) == 8
  assert float(m.mean_at_k(EST, TRUE, k)) == 13
  np.testing.assert_allclose(m.std_at_k(EST, TRUE, k), math.sqrt(88 / 4), rtol=1e-6)
  np.testing.assert_allclose(m.sharpe_ratio_at_k(EST, TRUE, BEHAVIOR, k), 11 / math.sqrt(22), rtol=1e-6)
  np.testing.assert_allclose(m.regret_at_k(EST, TRUE, k), 0.0, atol=1e-6)
  np.testing.assert_allclose(m.regret_at_k(EST, TRUE, 1), 20 - 8, rtol=1e-6)


def test_sharpe_ratio_edge_cases():
  assert math.isnan(float(m.sharpe_ratio_at_k(EST, TRUE, BEHAVIOR, 1)))  # std@1 undefined
  assert float(m.sharpe_ratio_at_k(EST, TRUE, 100.0, 3)) == 0.0          # no excess return
  assert math.isinf(float(m.sharpe_ratio_at_k(jnp.array([1.0, 1]), jnp.array([5.0, 5]), 0.0, 2)))


def test_ties_break_to_lower_index():
  assert m.top_k(jnp.array([1.0, 2.0, 2.0, 0.0]), 1).tolist() == [1]
  assert m.top_k(jnp.array([2.0, 2.0, 2.0]), 3).tolist() == [0, 1, 2]


def test_type_i_and_ii_error_rates():
  est, true = jnp.array([12.0, 9, 16, 7, 13]), TRUE
  np.testing.assert_allclose(m.type_i_error_rate(est, true, 11.0), 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(m.type_ii_error_rate(est, true, 11.0), 1 / 2, rtol=1e-6)
  assert float(m.type_ii_error_rate(est, true, 0.0)) == 0.0  # nothing is unsafe


def test_all_metrics_shapes():
  out = m.all_metrics(EST, TRUE, BEHAVIOR, (2, 3, 5), 11.0)
  assert out["sharpe_ratio@k"].shape == (3,)
  np.testing.assert_allclose(out["sharpe_ratio@k"][0], 3 / math.sqrt(8), rtol=1e-6)
  for key in ("mse", "relative_error", "rank_correlation", "type_i_error_rate", "regret@k",
              "best@k", "worst@k", "mean@k", "std@k"):
    assert key in out


def test_scope_rl_topk_metrics_by_hand():
  # Estimated order 3, 4, 0, 2, 1 -> true values 8, 12, 10, 15, 20; threshold 11.
  assert [float(m.kth_at_k(EST, TRUE, k)) for k in (1, 2, 3)] == [8, 12, 10]
  np.testing.assert_allclose([m.safety_violation_rate_at_k(EST, TRUE, 11.0, k) for k in (1, 2, 3, 4)],
                             [1, 1 / 2, 2 / 3, 2 / 4], rtol=1e-6)
  out = m.all_metrics(EST, TRUE, BEHAVIOR, (1, 3), 11.0)
  np.testing.assert_allclose(out["relative_best@k"], [8 / 9, 12 / 9], rtol=1e-6)
  np.testing.assert_allclose(out["relative_kth@k"], [8 / 9, 10 / 9], rtol=1e-6)
  np.testing.assert_allclose(out["safety_violation_rate@k"], [1, 2 / 3], rtol=1e-6)


def test_sharpe_ratio_clip():
  est, true = jnp.array([1.0, 1]), jnp.array([5.0, 5])
  assert float(m.sharpe_ratio_at_k(est, true, 0.0, 2, clip=True)) == 100.0     # +inf -> 100
  assert math.isnan(float(m.sharpe_ratio_at_k(EST, TRUE, BEHAVIOR, 1, clip=True)))  # k = 1 kept
  big = m.sharpe_ratio_at_k(jnp.array([2.0, 1]), jnp.array([1000.0, 999.99]), 0.0, 2, clip=True)
  assert float(big) == 100.0


def test_undefined_cases_are_decided():
  # relative error leaves out V = 0: only candidate 1 (|3 − 2| / 2) counts.
  np.testing.assert_allclose(m.relative_error(jnp.array([1.0, 3.0]), jnp.array([0.0, 2.0])), 0.5)
  assert math.isnan(float(m.relative_error(jnp.array([1.0]), jnp.array([0.0]))))
  # Constant estimates carry no ranking.
  assert float(m.rank_correlation(jnp.array([2.0, 2, 2]), TRUE[:3])) == 0.0
  # One NaN or infinite estimate: every metric is NaN, none computed from the others.
  for bad in (jnp.nan, jnp.inf, -jnp.inf):
    out = m.all_metrics(EST.at[1].set(bad), TRUE, BEHAVIOR, (2, 3), 11.0)
    for key, v in out.items():
      assert np.isnan(np.asarray(v)).all(), (bad, key)
