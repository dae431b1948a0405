"""Confidence intervals: formulas by hand, the ratio bootstrap, and coverage on the tiny MDP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from evaluation import ope
from evaluation.data import DataError, LoggedData
from evaluation.ope import estimators as est
from evaluation.ope import intervals as iv
from tests.evaluation import tiny_mdp as mdp
from tests.evaluation.test_estimators import BEHAVIOR, TARGETS, _wrong_q
from tests.xla_options import OPTIMISED

M, N = 400, 400          # datasets and trajectories of the coverage test


def _one_dataset(seed, n):
  data, states = mdp.sample(seed, n, *BEHAVIOR)
  lr = jnp.stack([est.log_ratio(data, mdp.target_log_prob(data, states, *t)) for t in TARGETS])
  qv = [_wrong_q(data, states, *t, seed=100 + i) for i, t in enumerate(TARGETS)]
  return data, lr, jnp.stack([x[0] for x in qv]), jnp.stack([x[1] for x in qv])


@pytest.fixture(scope="module")
def coverage():
  """Every interval of every estimator on M datasets (a wrong Q̂, so DR is not exact)."""
  parts = [_one_dataset(seed, N) for seed in range(M)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *parts)
  # lax.map in batches of 25 datasets: vmapping all 400 bootstraps at once took ~10 GB.
  one = lambda a: iv.confidence_intervals(a[0], a[1], mdp.GAMMA, a[4], a[2], a[3])
  f = jax.jit(lambda xs: jax.lax.map(one, xs, batch_size=25), compiler_options=OPTIMISED)
  return jax.device_get(f((*stacked, jax.random.split(jax.random.PRNGKey(0), M))))


def test_intervals_cover_the_exact_value(coverage):
  """95% intervals cover V(π_e) in 95% of datasets within 3.5 binomial standard errors
  (±0.038 at M = 400); Hoeffding and Bernstein are conservative (≥ 95%). DM's interval
  holds only the sampling noise of V̂(s₀), not the bias of a wrong Q̂, so it is left out."""
  truth = np.array([mdp.exact(*t)[0][0, 0] for t in TARGETS])
  tol = 3.5 * np.sqrt(0.95 * 0.05 / M)
  for name in ("tis", "pdis", "dr", "sntis", "snpdis", "sndr"):
    for ci in iv.INTERVALS:
      lo, hi = coverage[name][ci][..., 0], coverage[name][ci][..., 1]
      cov = ((lo <= truth) & (truth <= hi)).mean(0)
      if ci in ("hoeffding", "bernstein"):
        assert (cov >= 0.95 - tol).all(), (name, ci, cov)
      else:
        assert (np.abs(cov - 0.95) <= tol).all(), (name, ci, cov)


def test_formulas_by_hand():
  data, lr, q, v = _one_dataset(3, 50)
  out = iv.confidence_intervals(data, lr, mdp.GAMMA, jax.random.PRNGKey(1), q, v, alpha=0.1)
  # Per-trajectory PDIS values computed here, in numpy, from the arrays.
  r = np.asarray(data.reward) * np.asarray(est.valid_mask(data.terminated, data.truncated))
  w = np.exp(np.cumsum(np.asarray(lr[0]), axis=1))
  x = np.sum(mdp.GAMMA ** np.arange(mdp.T) * w * r, axis=1)
  n, mean, sd, rng = len(x), x.mean(), x.std(ddof=1), x.max() - x.min()
  np.testing.assert_allclose(out["pdis"]["ttest"][0],
                             stats.t.interval(0.9, n - 1, loc=mean, scale=sd / np.sqrt(n)), rtol=1e-4)
  h = rng * np.sqrt(np.log(2 / 0.1) / (2 * n))
  np.testing.assert_allclose(out["pdis"]["hoeffding"][0], [mean - h, mean + h], rtol=1e-4)
  b = np.sqrt(2 * sd**2 * np.log(4 / 0.1) / n) + 7 * rng * np.log(4 / 0.1) / (3 * (n - 1))
  np.testing.assert_allclose(out["pdis"]["bernstein"][0], [mean - b, mean + b], rtol=1e-4)
  # A plain bootstrap's percentiles against a numpy bootstrap of the same values.
  boot = np.random.default_rng(0).choice(x, (20000, n)).mean(1)
  np.testing.assert_allclose(out["pdis"]["bootstrap"][0], np.percentile(boot, [5, 95]),
                             atol=0.1 * sd / np.sqrt(n))


def test_self_normalized_intervals():
  """The linearised values average to the SN estimate; the ratio bootstrap matches a numpy
  ratio bootstrap (numerator and normaliser both resampled)."""
  data, lr, q, v = _one_dataset(5, 60)
  point = ope.estimate_all(data, lr, mdp.GAMMA, q, v)
  for p in range(len(TARGETS)):
    values = iv.trajectory_values(data, lr[p], mdp.GAMMA, q[p], v[p])
    for name in ("sntis", "snpdis", "sndr", "tis", "pdis", "dr", "dm"):
      np.testing.assert_allclose(np.mean(values[name]), point[name][p], rtol=1e-5, atol=1e-6)
  out = iv.confidence_intervals(data, lr, mdp.GAMMA, jax.random.PRNGKey(2), q, v, num_bootstrap=20000)
  wt = np.exp(np.sum(np.asarray(lr[1]), axis=1))
  g = np.sum(np.asarray(data.reward) * np.asarray(est.valid_mask(data.terminated, data.truncated))
             * mdp.GAMMA ** np.arange(mdp.T), axis=1)
  idx = np.random.default_rng(1).integers(0, len(g), (20000, len(g)))
  boot = (wt[idx] * g[idx]).sum(1) / wt[idx].sum(1)
  spread = boot.std()
  np.testing.assert_allclose(out["sntis"]["bootstrap"][1], np.percentile(boot, [2.5, 97.5]),
                             atol=0.1 * spread)


def test_bad_inputs():
  data, lr, q, v = _one_dataset(0, 1)
  with pytest.raises(DataError, match="at least 2 trajectories"):
    iv.confidence_intervals(data, lr, mdp.GAMMA, jax.random.PRNGKey(0))
  data, lr, q, v = _one_dataset(0, 10)
  with pytest.raises(DataError, match="alpha must be in"):
    iv.confidence_intervals(data, lr, mdp.GAMMA, jax.random.PRNGKey(0), alpha=1.5)


def test_ratio_bootstrap_is_finite_when_one_trajectory_holds_the_weight():
  """Log-weights 150 apart: e^-150 underflows float32. Resamples that miss trajectory 0
  must still give the ratio of the others (here every reward is 1, so SNTIS is 1·Σγ^t)."""
  n, t = 20, 3
  data = LoggedData(obs=jnp.zeros((n, t, 1)), action=jnp.zeros((n, t, 1)), reward=jnp.ones((n, t)),
                    terminated=jnp.zeros((n, t), bool),
                    truncated=jnp.zeros((n, t), bool).at[:, -1].set(True),
                    behavior_log_prob=jnp.zeros((n, t)))
  log_rho = jnp.zeros((1, n, t)).at[0, 0, 0].set(150.0)
  out = iv.confidence_intervals(data, log_rho, 0.9, jax.random.PRNGKey(0))
  for name in ("sntis", "snpdis"):
    np.testing.assert_allclose(out[name]["bootstrap"], [[2.71, 2.71]], rtol=1e-5)


def test_ratio_bootstrap_leaves_out_undefined_resamples():
  """One trajectory keeps its weight, the others have none (log w = −inf): the SN estimate
  is that trajectory's return; resamples that miss it are 0/0 and are left out."""
  n, t = 10, 2
  data = LoggedData(obs=jnp.zeros((n, t, 1)), action=jnp.zeros((n, t, 1)),
                    reward=jnp.arange(1.0, n + 1)[:, None].repeat(t, 1),
                    terminated=jnp.zeros((n, t), bool),
                    truncated=jnp.zeros((n, t), bool).at[:, -1].set(True),
                    behavior_log_prob=jnp.zeros((n, t)))
  log_rho = jnp.full((1, n, t), -jnp.inf).at[0, 3].set(0.0)
  out = iv.confidence_intervals(data, log_rho, 0.5, jax.random.PRNGKey(0))
  np.testing.assert_allclose(out["sntis"]["bootstrap"], [[6.0, 6.0]], rtol=1e-6)   # 4 + 0.5 * 4
