"""Candidate pools, Monte-Carlo true values and the vmapped sweep, on a bandit env whose
values are known in closed form (reward = action, one state, no termination)."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.common.running_stats import RunningStats
from envs.types import Env, EnvState
from evaluation import candidates, metrics, sweep
from evaluation.ope import ESTIMATORS, FQEConfig

H, GAMMA, MIN_STD = 5, 0.9, 1e-3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Bandit(Env):
  """reward = action[0]; the episode is truncated after H steps."""

  name, observation_size, action_size, episode_length = "bandit", 1, 1, H

  def reset(self, key):
    del key
    return EnvState(obs=jnp.zeros(1), reward=jnp.zeros(()), terminated=jnp.zeros((), bool),
                    truncated=jnp.zeros((), bool), info={"steps": jnp.zeros((), jnp.int32)})

  def step(self, state, action):
    steps = state.info["steps"] + 1
    return state.replace(reward=action[0], truncated=steps >= H, info={"steps": steps})


class Constant(nn.Module):
  """Outputs its bias: (loc, pre-softplus scale) regardless of the observation."""

  @nn.compact
  def __call__(self, obs):
    return nn.Dense(2)(obs)


def _params(loc, std):
  pre = np.log(np.expm1(std - MIN_STD))
  net = {"params": {"Dense_0": {"kernel": jnp.zeros((1, 2)), "bias": jnp.array([loc, pre])}}}
  return {"policy": net, "obs_stats": RunningStats.create(1)}


FAMILY = candidates.TanhGaussianFamily(Constant(), MIN_STD)
LOCS, STD, TEMPS = (0.4, -0.2), 0.6, (0.0, 0.5, 1.0)
POOL = candidates.make_pool([_params(m, STD) for m in LOCS], list(TEMPS))


def _expected_tanh(loc, scale):
  """E[tanh(loc + scale ε)], ε ~ N(0, 1), by Gauss-Hermite quadrature."""
  x, w = np.polynomial.hermite_e.hermegauss(80)
  return float(np.sum(w * np.tanh(loc + scale * x)) / np.sqrt(2 * np.pi))


def _truth():
  horizon_weight = sum(GAMMA ** t for t in range(H))
  return np.array([_expected_tanh(m, t * STD) * horizon_weight for m in LOCS for t in TEMPS])


def test_make_pool_order():
  assert POOL["temperature"].tolist() == list(TEMPS) * 2
  bias = POOL["params"]["policy"]["params"]["Dense_0"]["bias"][:, 0]
  np.testing.assert_allclose(bias, [LOCS[0]] * 3 + [LOCS[1]] * 3)


def test_family_density_and_mean():
  obs = jnp.zeros((1, 1))
  cand = jax.tree.map(lambda x: x[2], POOL)                    # loc 0.4, τ = 1
  grid = jnp.linspace(-1 + 1e-4, 1 - 1e-4, 20001)[:, None]
  dens = jnp.exp(FAMILY.log_prob(cand, jnp.zeros((grid.shape[0], 1)), grid))
  np.testing.assert_allclose(float(jnp.trapezoid(dens, grid[:, 0])), 1.0, atol=2e-3)
  det = jax.tree.map(lambda x: x[0], POOL)                     # τ = 0
  np.testing.assert_allclose(FAMILY.sample(det, obs, jax.random.PRNGKey(0)), np.tanh([[0.4]]),
                             rtol=1e-6)
  np.testing.assert_allclose(FAMILY.mean_action(cand, obs), np.tanh([[0.4]]), rtol=1e-6)


def test_true_values_match_closed_form():
  mean, se = jax.jit(lambda k: candidates.true_values(Bandit(), FAMILY, POOL, k, 4000, H, GAMMA))(
      jax.random.PRNGKey(1))
  truth = _truth()
  mean, se = np.asarray(mean), np.asarray(se)
  assert se[0] < 1e-6 and se[3] < 1e-6                          # deterministic candidates
  np.testing.assert_allclose(mean[[0, 3]], truth[[0, 3]], rtol=1e-5)
  assert (se[[1, 2, 4, 5]] > 0).all() and (se < 0.02).all()
  assert (np.abs(mean - truth) < 4 * se + 1e-5).all(), (mean, truth, se)


@pytest.fixture(scope="module")
def swept():
  """4 datasets of 64 trajectories from the pool's (loc 0.4, τ 1) member; every estimator."""
  behavior = jax.tree.map(lambda x: x[2], POOL)
  stochastic = jax.tree.map(lambda x: x[jnp.array([1, 2, 4, 5])], POOL)
  cfg = FQEConfig(hidden=(16,), steps_per_stage=400, batch_size=64, num_action_samples=4)

  @jax.jit
  def run(key):
    k_data, k_fqe = jax.random.split(key)
    data = sweep.collect_datasets(Bandit(), FAMILY, behavior, k_data, 4, 64, H)
    inputs = jax.vmap(lambda d, k: sweep.ratios_and_q(d, FAMILY, stochastic, GAMMA, k, False,
                                                      0.3, cfg))(data, jax.random.split(k_fqe, 4))
    est = jax.vmap(lambda d, i: sweep.estimate(d, i, GAMMA))(data, inputs)
    return data, est, sweep.behavior_values(data, GAMMA)

  return run(jax.random.PRNGKey(2))


def test_sweep_shapes_and_on_policy_candidate(swept):
  data, est, bv = swept
  assert data.reward.shape == (4, 64, H) and bv.shape == (4,)
  assert set(est) == set(ESTIMATORS)
  for name, v in est.items():
    assert v.shape == (4, 4) and np.isfinite(v).all(), name
  # Candidate 1 (loc 0.4, τ 1) is the behaviour policy: every weight is 1.
  for name in ("tis", "pdis", "sntis", "snpdis"):
    np.testing.assert_allclose(est[name][:, 1], bv, rtol=1e-5, err_msg=name)


def test_sweep_estimates_near_truth(swept):
  _, est, _ = swept
  truth = _truth()[[1, 2, 4, 5]]
  # FQE fits Q_t(a) = a + γ V_{t+1}; DM and the doubly robust forms inherit its accuracy.
  # Plain DR keeps more of the importance weights' variance (candidate 2 is far from b).
  for name, tol in (("dm", 0.1), ("sndr", 0.1), ("dr", 0.3)):
    err = np.abs(np.asarray(est[name]).mean(0) - truth)
    assert (err < tol).all(), (name, err, truth)


def test_summary_hides_no_divergence():
  """Plain means: a NaN estimate on one of 3 datasets makes that estimator's means NaN and
  counts as one non-finite dataset; an inf estimate counts too; std@1 is NaN for all."""
  truth = jnp.asarray([1.0, 2.0, 3.0])
  good = jnp.asarray([[1.0, 2.0, 3.0], [1.1, 1.9, 3.2], [0.8, 2.5, 2.9]])
  estimates = {"ok": good, "nan": good.at[1, 0].set(jnp.nan), "inf": good.at[2, 2].set(jnp.inf)}
  scores = sweep.assess(estimates, truth, 1.5, (1, 2), 1.5)
  out = sweep.summarize(jax.device_get(estimates), jax.device_get(scores))
  assert [out[n]["nonfinite_datasets"] for n in ("ok", "nan", "inf")] == [0, 1, 1]
  mse_ok = np.mean([np.mean((np.asarray(g) - np.asarray(truth)) ** 2) for g in good])
  np.testing.assert_allclose(out["ok"]["metrics_mean"]["mse"], mse_ok, rtol=1e-5)
  assert np.isnan(out["nan"]["metrics_mean"]["mse"]) and np.isnan(out["nan"]["metrics_mean"]["regret@k"]).all()
  assert np.isnan(out["inf"]["metrics_mean"]["mse"])        # a diverged dataset poisons the mean
  for n in out:
    assert np.isnan(out[n]["metrics_mean"]["std@k"][0]) and np.isnan(out[n]["metrics_mean"]["sharpe_ratio@k"][0])
  assert np.isfinite(out["ok"]["metrics_mean"]["sharpe_ratio@k"][1])


def test_assess_matches_metrics(swept):
  _, est, bv = swept
  truth = jnp.asarray(_truth()[[1, 2, 4, 5]], jnp.float32)
  scores = sweep.assess(est, truth, bv, (1, 2, 4), bv)
  for name in est:
    sr = np.asarray(scores[name]["sharpe_ratio@k"])
    assert sr.shape == (4, 3) and np.isnan(sr[:, 0]).all()
    for s in range(4):
      want = metrics.sharpe_ratio_at_k(est[name][s], truth, bv[s], 4)
      np.testing.assert_allclose(sr[s, 2], want, rtol=1e-5)


@pytest.mark.parametrize("args, message", [
    ([], "--workdir is required"),
    (["--workdir=/tmp/x", "--temperatures=0,1"], "mixes deterministic"),
    (["--workdir=/tmp/x", "--behavior_temperature=0"], "behavior_temperature must be > 0"),
    (["--workdir=/tmp/x", "--fqe_steps_per_stage=0"], "--fqe_steps_per_stage must be positive"),
    (["--workdir=/tmp/x", "--kernel=box"], "--kernel must be one of"),
])
def test_ope_sweep_bad_flags(args, message):
  out = subprocess.run([sys.executable, "-m", "experiments.ope_sweep", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert message in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
