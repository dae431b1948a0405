"""OPE estimators against closed forms on a tiny MDP (tests/evaluation/tiny_mdp.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
  expected = -(2 * 0.3**2) / (2 * h**2) - np.log(2 * np.pi * h**2) + 0.7
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
                                           ope.FQEConfig(num_steps=3000, num_action_samples=16)))(
                                               params, jax.random.PRNGKey(0))
  q_true, v_true = _exact_q(data, states, means, scale)
  mask = np.asarray(est.valid_mask(data.terminated, data.truncated))
  err = np.abs(np.asarray(q_sa) - np.asarray(q_true))[mask]
  assert err.mean() < 0.05, err.mean()
  np.testing.assert_allclose(est.dm(v_s), mdp.exact(means, scale)[0][0, 0], rtol=0.03)
