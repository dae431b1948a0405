"""Cumulative-distribution OPE against the tiny MDP's exact return distribution."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from evaluation.ope import cumulative as cd
from evaluation.ope import estimators as est
from tests.evaluation import tiny_mdp as mdp

BEHAVIOR = ((0.0, 0.0), 1.0)
TARGET = ((0.5, -0.5), 1.0)


def exact_distribution(means, scale):
  """(returns, probabilities) of every path of the tiny MDP, enumerated: from s = 0, each
  step goes with P(go | s), earns R[s, go], and (1, stay) ends the episode."""
  p = mdp.p_go(means, scale)
  out = {}
  for gos in itertools.product((0, 1), repeat=mdp.T):
    s, g, prob = 0, 0.0, 1.0
    for t, go in enumerate(gos):
      prob *= p[s] if go else 1 - p[s]
      g += mdp.GAMMA ** t * mdp.R[s, go]
      if mdp.TERMINAL[s, go]:
        break
      s = go
    else:
      t = mdp.T
    key = round(g, 9)
    # paths that ended early repeat over the unused later choices: count each once
    if t < mdp.T - 1 and any(gos[t + 1:]):
      continue
    out[key] = out.get(key, 0.0) + prob
  returns = np.array(sorted(out))
  return returns, np.array([out[r] for r in returns])


def test_enumeration_matches_the_closed_form_value():
  returns, probs = exact_distribution(*TARGET)
  assert probs.sum() == pytest.approx(1.0)
  assert (returns * probs).sum() == pytest.approx(mdp.exact(*TARGET)[0][0, 0])


@pytest.fixture(scope="module")
def grid():
  returns, probs = exact_distribution(*TARGET)
  return jnp.asarray(returns, jnp.float32), np.cumsum(probs)


def _estimates(seed, n, target, thresholds, v0=None):
  data, states = mdp.sample(seed, n, *BEHAVIOR)
  log_rho = est.log_ratio(data, mdp.target_log_prob(data, states, *target))
  v0 = jnp.full((n,), mdp.exact(*target)[0][0, 0] if v0 is None else v0, jnp.float32)
  return data, cd.cumulative_distributions(data, log_rho, mdp.GAMMA, v0, thresholds)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_importance_sampled_cdfs_converge_to_the_exact_cdf(grid, seed):
  thresholds, exact = grid
  _, f = _estimates(seed, 20000, TARGET, thresholds)
  for name in ("cd_tis", "cd_sntis", "cd_tdr", "cd_sntdr"):
    assert np.abs(np.asarray(f[name]) - exact).max() < 0.04, (name, np.asarray(f[name]), exact)


def test_on_policy_weights_give_the_empirical_cdf(grid):
  thresholds, _ = grid
  data, f = _estimates(0, 500, BEHAVIOR, thresholds)
  g = np.sum(np.asarray(data.reward) * mdp.GAMMA ** np.arange(mdp.T), axis=1)
  empirical = (g[:, None] <= np.asarray(thresholds)[None, :] + 1e-6).mean(0)
  for name in ("cd_tis", "cd_sntis"):
    np.testing.assert_allclose(f[name], empirical, atol=1e-5)


def test_direct_method_is_a_step_at_the_predicted_value(grid):
  thresholds, exact = grid
  v = float(mdp.exact(*TARGET)[0][0, 0])
  _, f = _estimates(0, 300, TARGET, thresholds)
  np.testing.assert_array_equal(f["cd_dm"], (np.asarray(thresholds) >= v).astype(np.float32))
  # the doubly robust form corrects the point-mass model towards the truth
  dm_error = np.abs(np.asarray(f["cd_dm"]) - exact).max()
  _, f = _estimates(0, 20000, TARGET, thresholds)
  assert np.abs(np.asarray(f["cd_tdr"]) - exact).max() < dm_error / 3


def test_risk_functionals_by_hand():
  m = jnp.array([0.0, 1.0, 2.0, 3.0])
  for cdf in ([0.1, 0.4, 0.4, 1.0], [0.1, 0.4, 0.4, 0.8]):   # the second: mass 0.2 short
    r = cd.risk_functionals(jnp.array(cdf), m, alpha=0.2)
    # masses 0.1, 0.3, 0, 0.6 at 0, 1, 2, 3
    assert float(r["mean"]) == pytest.approx(2.1)
    assert float(r["variance"]) == pytest.approx(0.1 * 2.1 ** 2 + 0.3 * 1.1 ** 2 + 0.6 * 0.9 ** 2)
    assert float(r["cvar"]) == pytest.approx((0.1 * 0 + 0.1 * 1) / 0.2)
    assert float(r["lower_quartile"]) == 1.0 and float(r["median"]) == 3.0
    assert float(r["interquartile_range"]) == 2.0


def test_risk_functionals_of_the_exact_cdf(grid):
  thresholds, exact = grid
  returns, probs = exact_distribution(*TARGET)
  r = cd.risk_functionals(jnp.asarray(exact, jnp.float32), thresholds, alpha=0.1)
  assert float(r["mean"]) == pytest.approx((returns * probs).sum(), rel=1e-5)
  # CVaR_0.1 by sorting outcomes: the lowest 10% of the mass
  left, tail = 0.1, 0.0
  for g, p in zip(returns, probs):
    take = min(p, left)
    tail += take * g
    left -= take
  assert float(r["cvar"]) == pytest.approx(tail / 0.1, rel=1e-5)


def test_an_undefined_cdf_gives_undefined_functionals():
  m = jnp.array([0.0, 1.0, 2.0])
  r = cd.risk_functionals(jnp.array([0.2, jnp.nan, 0.9]), m, alpha=0.2)
  assert all(np.isnan(float(v)) for v in r.values()), r
