"""OPE estimators against closed forms on a tiny MDP (tests/evaluation/tiny_mdp.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from evaluation import ope
from evaluation.data import LoggedData
from evaluation.ope import estimators as est
from tests.evaluation import tiny_mdp as mdp

BEHAVIOR = ((0.0, 0.0), 1.0)
TARGETS = [((0.5, -0.5), 1.0), ((-0.3, 0.8), 0.7), ((0.0, 0.0), 1.0)]


def _exact_q(data, states, means, scale):
  """Exact Q_t(s_t, a_t) and V_t(s_t) [N, T] at the logged steps (0 on padding)."""
  v, q = mdp.exact(means, scale)
  go = (np.asarray(data.action)[..., 0] > 0).astype(int)
  t = np.arange(mdp.T)[None, :]
  mask = np.asarray(est.valid_mask(data.terminated, data.truncated))
  return (jnp.asarray(q[t, states, go] * mask, jnp.float32),
          jnp.asarray(v[t, states] * mask, jnp.float32))


@pytest.fixture(scope="module")
def many_datasets():
  """40 datasets of 200 trajectories, with every target's log-ratios and exact Q."""
  out = []
  for seed in range(40):
    data, states = mdp.sample(seed, 200, *BEHAVIOR)
    lr = jnp.stack([est.log_ratio(data, mdp.target_log_prob(data, states, *t)) for t in TARGETS])
    qv = [_exact_q(data, states, *t) for t in TARGETS]
    q = jnp.stack([x[0] for x in qv])
    v = jnp.stack([x[1] for x in qv])
    out.append(jax.device_get(ope.estimate_all(data, lr, mdp.GAMMA, q, v)))
  return out


def test_importance_sampling_is_unbiased(many_datasets):
  truth = np.array([mdp.exact(*t)[0][0, 0] for t in TARGETS])
  for name in ("tis", "pdis"):
    values = np.array([d[name] for d in many_datasets])        # [datasets, P]
    mean, se = values.mean(0), values.std(0, ddof=1) / np.sqrt(len(values))
    assert (np.abs(mean - truth) < 4 * se + 1e-6).all(), (name, mean, truth, se)


def test_dr_with_exact_q_is_exact(many_datasets):
  truth = np.array([mdp.exact(*t)[0][0, 0] for t in TARGETS])
  for name in ("dr", "sndr", "dm"):
    for d in many_datasets:
      np.testing.assert_allclose(d[name], truth, rtol=1e-4, atol=1e-4, err_msg=name)


def test_on_policy_ratios_give_the_sample_mean(many_datasets):
  # The third target equals the behaviour policy: every weight is 1.
  data, _ = mdp.sample(0, 200, *BEHAVIOR)
  returns = np.sum(np.asarray(data.reward) * mdp.GAMMA ** np.arange(mdp.T)
                   * np.asarray(est.valid_mask(data.terminated, data.truncated)), axis=1)
  for name in ("tis", "pdis", "sntis", "snpdis"):
    np.testing.assert_allclose(many_datasets[0][name][2], returns.mean(), rtol=1e-5)


def _toy(rewards, rho0):
  """Two 3-step trajectories whose first-step ratios are rho0 and later ratios 1."""
  n, t = np.asarray(rewards).shape
  data = LoggedData(obs=jnp.zeros((n, t, 1)), action=jnp.zeros((n, t, 1)),
                    reward=jnp.asarray(rewards, jnp.float32), terminated=jnp.zeros((n, t), bool),
                    truncated=jnp.zeros((n, t), bool).at[:, -1].set(True),
                    behavior_log_prob=jnp.zeros((n, t)))
  log_rho = jnp.zeros((n, t)).at[:, 0].set(jnp.log(jnp.asarray(rho0)))
  return data, log_rho


def test_self_normalized_equal_plain_when_weights_average_to_one():
  data, log_rho = _toy([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], [0.5, 1.5])
  q = jnp.asarray([[0.3, 0.1, 0.2], [1.0, 0.4, -0.2]])
  v = jnp.asarray([[0.2, 0.5, 0.1], [0.6, 0.3, 0.0]])
  g = 0.9
  np.testing.assert_allclose(est.tis(data, log_rho, g, True), est.tis(data, log_rho, g), rtol=1e-6)
  np.testing.assert_allclose(est.pdis(data, log_rho, g, True), est.pdis(data, log_rho, g), rtol=1e-6)
  np.testing.assert_allclose(est.dr(data, log_rho, g, q, v, True), est.dr(data, log_rho, g, q, v),
                             rtol=1e-6)
  # By hand: TIS = mean(0.5·G1, 1.5·G2), G = r0 + .9 r1 + .81 r2.
  g1, g2 = 1 + 0.9 * 2 + 0.81 * 3, 0.5 - 0.9 + 0.81 * 4
  np.testing.assert_allclose(est.tis(data, log_rho, g), (0.5 * g1 + 1.5 * g2) / 2, rtol=1e-6)


def test_self_normalized_differs_otherwise():
  data, log_rho = _toy([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0]], [1.0, 3.0])
  # SNTIS = (1·1 + 3·3) / (1 + 3) = 2.5; TIS = (1 + 9) / 2 = 5.
  np.testing.assert_allclose(est.tis(data, log_rho, 0.9, True), 2.5, rtol=1e-6)
  np.testing.assert_allclose(est.tis(data, log_rho, 0.9), 5.0, rtol=1e-6)


def test_kernel_ratio_of_deterministic_policy():
  data, _ = _toy([[1.0, 0.0, 0.0]], [1.0])
  data = data.replace(action=jnp.full((1, 3, 2), 0.1), behavior_log_prob=jnp.full((1, 3), -0.7))
  target = jnp.full((1, 3, 2), 0.4)
  h = 0.5
  lr = est.kernel_log_ratio(data, target, h)
  # Two dimensions of N(0.1; 0.4, h²) each divided by its mass inside [-1, 1].
  mass = norm.cdf((1 - 0.4) / h) - norm.cdf((-1 - 0.4) / h)
  expected = -(2 * 0.3**2) / (2 * h**2) - np.log(2 * np.pi * h**2) - 2 * np.log(mass) + 0.7
  np.testing.assert_allclose(lr, np.full((1, 3), expected), rtol=1e-5)


def test_padding_after_termination_is_ignored():
  data, log_rho = _toy([[1.0, 5.0, 7.0]], [2.0])
  data = data.replace(terminated=jnp.array([[True, False, False]]),
                      truncated=jnp.zeros((1, 3), bool))
  np.testing.assert_allclose(est.pdis(data, log_rho, 0.9), 2.0, rtol=1e-6)


def test_fqe_recovers_q_and_value():
  means, scale = TARGETS[0]
  data, states = mdp.sample(123, 2000, *BEHAVIOR)

  def sample_action(params, obs, key):
    loc = obs @ params["means"]
    return jnp.tanh(loc + params["scale"] * jax.random.normal(key, loc.shape))[:, None]

  params = {"means": jnp.asarray(means, jnp.float32), "scale": jnp.float32(scale)}
  q_sa, v_s = jax.jit(lambda p, k: ope.fqe(data, sample_action, p, mdp.GAMMA, k,
                                           ope.FQEConfig(steps_per_stage=400, num_action_samples=16)))(
                                               params, jax.random.PRNGKey(0))
  q_true, v_true = _exact_q(data, states, means, scale)
  mask = np.asarray(est.valid_mask(data.terminated, data.truncated))
  err = np.abs(np.asarray(q_sa) - np.asarray(q_true))[mask]
  assert err.mean() < 0.05, err.mean()
  np.testing.assert_allclose(est.dm(v_s), mdp.exact(means, scale)[0][0, 0], rtol=0.03)


def _tanh_mean(loc, scale):
  """E[tanh(loc + scale ε)], ε ~ N(0, 1), by Gauss-Hermite quadrature."""
  x, w = np.polynomial.hermite_e.hermegauss(80)
  return float(np.sum(w * np.tanh(loc + scale * x)) / np.sqrt(2 * np.pi))


def test_fqe_defaults_reach_a_long_horizon():
  """T = 50, γ = 0.99, r_t = 1 + a_t / 2 with a uniform behaviour: V(s₀) = Σ_t γ^t E_π[r]
  ≈ 47.7. The old FQE (a target copy every 100 of 1500 steps) gave ~15-20 here."""
  horizon, gamma, n, loc, scale = 50, 0.99, 100, 0.5, 0.4
  rng = np.random.default_rng(0)
  act = rng.uniform(-1, 1, (n, horizon, 1)).astype(np.float32)
  data = LoggedData(obs=jnp.asarray(rng.standard_normal((n, horizon, 3)), jnp.float32),
                    action=jnp.asarray(act), reward=jnp.asarray(1 + act[..., 0] / 2),
                    terminated=jnp.zeros((n, horizon), bool),
                    truncated=jnp.zeros((n, horizon), bool).at[:, -1].set(True),
                    behavior_log_prob=jnp.full((n, horizon), -np.log(2.0), jnp.float32))
  reward = 1 + _tanh_mean(loc, scale) / 2
  v_exact = np.array([sum(gamma**k * reward for k in range(horizon - t)) for t in range(horizon)])
  q_exact = np.asarray(data.reward) + gamma * np.append(v_exact[1:], 0.0)[None]

  def sample_action(p, obs, key):
    return jnp.tanh(p + scale * jax.random.normal(key, (obs.shape[0], 1)))

  q_sa, v_s = jax.jit(lambda k: ope.fqe(data, sample_action, jnp.float32(loc), gamma, k))(
      jax.random.PRNGKey(1))
  np.testing.assert_allclose(est.dm(v_s), v_exact[0], rtol=0.01)
  np.testing.assert_allclose(np.asarray(v_s).mean(0), v_exact, rtol=0.03, atol=0.1)
  assert np.abs(np.asarray(q_sa) - q_exact).mean() < 0.03 * v_exact[0]


def test_fqe_refuses_bad_settings():
  data, _ = _toy([[1.0, 0.0, 0.0]], [1.0])
  sample = lambda p, obs, k: jnp.zeros((obs.shape[0], 1))
  with pytest.raises(ValueError, match="steps_per_stage must be >= 1"):
    ope.fqe(data, sample, None, 0.9, jax.random.PRNGKey(0), ope.FQEConfig(steps_per_stage=0))
  with pytest.raises(est.DataError, match="differs from the logged data's metadata discount 0.99"):
    ope.fqe(data.replace(metadata={"discount": 0.99}), sample, None, 0.9, jax.random.PRNGKey(0))


@pytest.mark.parametrize("kernel", sorted(ope.KERNELS))
def test_truncated_kernel_is_a_density_on_the_box(kernel):
  grid = np.linspace(-1, 1, 200001)
  for mu in (0.0, 0.5, 0.96, -1.0):
    for h in (0.1, 0.3, 1.0):
      dens = np.exp(np.asarray(est.log_kernel(jnp.asarray(grid)[:, None], jnp.full((1, 1), mu), h, kernel)))
      np.testing.assert_allclose(np.trapezoid(dens, grid), 1.0, atol=2e-3, err_msg=f"{kernel} {mu} {h}")


@pytest.mark.parametrize("kernel", sorted(ope.KERNELS))
def test_sample_kernel_draws_the_truncated_density(kernel):
  """Samples of K_h(· | μ) against the CDF of `log_kernel`'s density integrated on a grid,
  in two dimensions at once (μ = 0.8 and −0.95, h = 0.3: each near one bound):
  Kolmogorov distance < 0.01."""
  n, h, mu = 100000, 0.3, jnp.asarray([0.8, -0.95])
  a = np.asarray(ope.sample_kernel(jax.random.PRNGKey(0), jnp.broadcast_to(mu, (n, 2)), h, kernel))
  assert a.shape == (n, 2) and np.all(np.abs(a) <= 1)
  grid = np.linspace(-1, 1, 20001)
  for d in range(2):
    dens = np.exp(np.asarray(est.log_kernel(jnp.asarray(grid)[:, None], jnp.full((1, 1), mu[d]), h,
                                            kernel)))
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    empirical = np.searchsorted(np.sort(a[:, d]), grid, side="right") / n
    assert np.max(np.abs(empirical - cdf)) < 0.01, (kernel, d)


def test_sample_kernel_untruncated_clips_to_the_box():
  """truncate=False: μ + h z over ℝ, clipped; the mass at the bound is 1 − Φ((1 − μ)/h)."""
  a = np.asarray(ope.sample_kernel(jax.random.PRNGKey(1), jnp.full((200000, 1), 0.8), 0.3,
                                   truncate=False))
  assert np.mean(a == 1.0) == pytest.approx(1 - norm.cdf(0.2 / 0.3), abs=0.005)
  assert np.mean(a < 0.5) == pytest.approx(norm.cdf(-0.3 / 0.3), abs=0.005)
  with pytest.raises(ValueError, match="unknown kernel"):
    ope.sample_kernel(jax.random.PRNGKey(1), jnp.zeros((2, 1)), 0.3, "box")


def test_kernel_ratio_near_the_action_bound_is_unbiased():
  """Deterministic targets at 0.5, 0.8 and 0.96 (h = 0.3) on data of a uniform behaviour
  policy and reward 1: V = Σ_{t<3} γ^t whatever the action, so PDIS and TIS must find
  it. The kernel over all of ℝ would have expected weights 0.95^t, 0.75^t, 0.55^t."""
  n, horizon, gamma, h = 40000, 3, 0.9, 0.3
  rng = np.random.default_rng(3)
  act = rng.uniform(-1, 1, (n, horizon, 1)).astype(np.float32)
  data = LoggedData(obs=jnp.zeros((n, horizon, 1)), action=jnp.asarray(act),
                    reward=jnp.ones((n, horizon)), terminated=jnp.zeros((n, horizon), bool),
                    truncated=jnp.zeros((n, horizon), bool).at[:, -1].set(True),
                    behavior_log_prob=jnp.full((n, horizon), -np.log(2.0), jnp.float32))
  targets = (0.5, 0.8, 0.96)
  lr = jnp.stack([ope.kernel_log_ratio(data, jnp.full((n, horizon, 1), m), h) for m in targets])
  out = ope.estimate_all(data, lr, gamma)
  truth = sum(gamma**t for t in range(horizon))
  w = np.exp(np.cumsum(np.asarray(lr), axis=2))                         # [P, N, T]
  per_traj = np.sum(w * gamma ** np.arange(horizon), axis=2)
  se = per_traj.std(1, ddof=1) / np.sqrt(n)
  assert (np.abs(np.asarray(out["pdis"]) - truth) < 4 * se).all(), (out["pdis"], truth, se)
  assert (np.abs(np.asarray(out["snpdis"]) - truth) < 1e-4).all()       # every weight column sums to N
  tis_se = (w[..., -1] * truth).std(1, ddof=1) / np.sqrt(n)
  assert (np.abs(np.asarray(out["tis"]) - truth) < 4 * tis_se).all(), (out["tis"], tis_se)


def test_dr_with_zero_q_is_pdis(many_datasets):
  data, states = mdp.sample(7, 300, *BEHAVIOR)
  lr = jnp.stack([est.log_ratio(data, mdp.target_log_prob(data, states, *t)) for t in TARGETS])
  zero = jnp.zeros_like(lr)
  out = ope.estimate_all(data, lr, mdp.GAMMA, zero, zero)
  np.testing.assert_allclose(out["dr"], out["pdis"], rtol=1e-5)
  np.testing.assert_allclose(out["sndr"], out["snpdis"], rtol=1e-5)
  np.testing.assert_allclose(out["dm"], 0.0)


def _wrong_q(data, states, means, scale, seed):
  """A wrong Q̂ table (random numbers) with the V̂ it implies under π_e: V̂ = E_{π_e} Q̂."""
  q_w = np.random.default_rng(seed).uniform(-3, 3, (mdp.T, 2, 2))
  p = mdp.p_go(means, scale)
  v_w = p[None, :] * q_w[:, :, 1] + (1 - p[None, :]) * q_w[:, :, 0]
  go = (np.asarray(data.action)[..., 0] > 0).astype(int)
  t = np.arange(mdp.T)[None, :]
  mask = np.asarray(est.valid_mask(data.terminated, data.truncated))
  return (jnp.asarray(q_w[t, states, go] * mask, jnp.float32),
          jnp.asarray(v_w[t, states] * mask, jnp.float32))


def _estimates_with_wrong_q(seed, n):
  data, states = mdp.sample(seed, n, *BEHAVIOR)
  lr = jnp.stack([est.log_ratio(data, mdp.target_log_prob(data, states, *t)) for t in TARGETS])
  qv = [_wrong_q(data, states, *t, seed=100 + i) for i, t in enumerate(TARGETS)]
  return jax.device_get(ope.estimate_all(data, lr, mdp.GAMMA, jnp.stack([x[0] for x in qv]),
                                         jnp.stack([x[1] for x in qv])))


def test_dr_with_a_wrong_q_stays_unbiased():
  truth = np.array([mdp.exact(*t)[0][0, 0] for t in TARGETS])
  values = np.array([_estimates_with_wrong_q(seed, 200)["dr"] for seed in range(40)])
  mean, se = values.mean(0), values.std(0, ddof=1) / np.sqrt(len(values))
  assert (np.abs(mean - truth) < 4 * se + 1e-6).all(), (mean, truth, se)
  dm = np.array([_estimates_with_wrong_q(0, 200)["dm"]])
  assert (np.abs(dm - truth) > 0.1).any()        # the Q̂ is indeed wrong


def test_self_normalized_forms_are_consistent():
  """SNTIS, SNPDIS, SNDR (wrong Q̂) approach the exact value as N grows: the RMSE over 8
  datasets shrinks ~√64 = 8x from N = 100 to N = 6400 and ends small."""
  truth = np.array([mdp.exact(*t)[0][0, 0] for t in TARGETS])
  rmse = {}
  for n in (100, 6400):
    vals = [_estimates_with_wrong_q(seed, n) for seed in range(8)]
    for name in ("sntis", "snpdis", "sndr"):
      err = np.array([v[name] for v in vals]) - truth
      rmse[name, n] = np.sqrt((err**2).mean(0))
  for name in ("sntis", "snpdis", "sndr"):
    assert (rmse[name, 6400] < rmse[name, 100] / 3).all(), (name, rmse[name, 100], rmse[name, 6400])
    assert (rmse[name, 6400] < 0.1 * np.abs(truth)).all(), (name, rmse[name, 6400], truth)


def test_overflowed_weights_times_zero_reward_are_not_nan():
  data, log_rho = _toy([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]], [1.0, 1.0])
  log_rho = log_rho.at[0, 1].set(200.0)           # w_{0:1} = e^200 = inf in float32
  out = ope.estimate_all(data, log_rho[None], 0.9, jnp.zeros((1, 2, 3)), jnp.zeros((1, 2, 3)))
  for name in ("pdis", "dr", "snpdis", "sndr"):
    assert np.isfinite(out[name]).all(), (name, out[name])
  np.testing.assert_allclose(out["pdis"], 1.5, rtol=1e-6)    # only the finite first step counts
  padded = data.replace(terminated=jnp.array([[False, True, False], [False, False, False]]),
                        truncated=jnp.array([[False, False, False], [False, False, True]]))
  out = ope.estimate_all(padded, log_rho[None], 0.9)
  np.testing.assert_allclose(out["pdis"], 1.5, rtol=1e-6)    # inf weight on padding: ignored
  assert np.isposinf(out["tis"]).all()                      # a true overflow stays visible


@pytest.mark.parametrize("change, message", [
    (lambda lr, q: (lr[0], q), "log_rho must be"),
    (lambda lr, q: (lr.at[0, 0, 0].set(jnp.nan), q), "log_rho has 1 NaN"),
    (lambda lr, q: (lr, q[:, :1]), "q_sa must have"),
])
def test_estimate_all_validates_its_inputs(change, message):
  data, log_rho = _toy([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], [0.5, 1.5])
  lr, q = change(log_rho[None], jnp.zeros((1, 2, 3)))
  with pytest.raises(est.DataError, match=message):
    ope.estimate_all(data, lr, 0.9, q, jnp.zeros((1, 2, 3)))


def test_untruncated_kernel_loses_the_mass_outside_the_box():
  """The ablation switch: without truncation the log-ratio drops by log(mass in box)."""
  data, _ = _toy([[1.0, 0.0, 0.0]], [1.0])
  data = data.replace(action=jnp.full((1, 3, 1), 0.9))
  target = jnp.full((1, 3, 1), 0.96)
  full = est.kernel_log_ratio(data, target, 0.3)
  raw = est.kernel_log_ratio(data, target, 0.3, truncate=False)
  mass = norm.cdf((1 - 0.96) / 0.3) - norm.cdf((-1 - 0.96) / 0.3)
  np.testing.assert_allclose(raw - full, np.full((1, 3), np.log(mass)), rtol=1e-5)


def test_padding_log_ratios_are_ignored():
  data, log_rho = _toy([[1.0, 5.0, 7.0], [2.0, 1.0, 1.0]], [2.0, 0.5])
  data = data.replace(terminated=jnp.array([[True, False, False], [False, False, False]]),
                      truncated=jnp.array([[False, False, False], [False, False, True]]))
  clean = ope.estimate_all(data, log_rho[None], 0.9)
  dirty = ope.estimate_all(data, log_rho.at[0, 1:].set(jnp.array([jnp.nan, 5.0]))[None], 0.9)
  for name in clean:
    np.testing.assert_allclose(dirty[name], clean[name], rtol=1e-6, err_msg=name)


def test_all_zero_weights_make_the_self_normalized_forms_undefined():
  """A compact kernel whose support misses every logged action at a step: the plain
  forms are 0 from there on, the SN forms 0/0 = NaN (documented), never a silent 0."""
  data, _ = _toy([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [1.0, 1.0])
  data = data.replace(action=jnp.full((2, 3, 1), 0.9))
  target = jnp.zeros((2, 3, 1)).at[:, 1].set(-0.9)            # 1.8 away at t = 1, h = 0.5
  lr = est.kernel_log_ratio(data, target, 0.5, "epanechnikov")
  assert np.isneginf(np.asarray(lr)[:, 1]).all()
  out = ope.estimate_all(data, lr[None], 0.9)
  assert np.isfinite(out["pdis"]).all() and np.isfinite(out["tis"]).all()
  assert np.isnan(out["snpdis"]).all() and np.isnan(out["sntis"]).all()
