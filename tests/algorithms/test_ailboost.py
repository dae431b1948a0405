"""AILBoost: boosting weights, the weighted buffer's sampling probabilities, the
discriminator loss by hand, and the ensemble sampling members with their weights."""

import jax
import jax.numpy as jnp
import numpy as np

from algorithms import ailboost
from algorithms.common.networks import MLP

ETA = 0.05


def test_boosting_weights_by_hand():
  w = lambda k: np.asarray(ailboost.boosting_weights(k, 4, ETA))
  np.testing.assert_allclose(w(1), [1, 0, 0, 0])
  np.testing.assert_allclose(w(2), [0.95, 0.05, 0, 0], rtol=1e-6)
  # Three learners: the old mixture scaled by 1 − η, the newest at η.
  np.testing.assert_allclose(w(3), [0.9025, 0.0475, 0.05, 0], rtol=1e-6)
  np.testing.assert_allclose(w(4), [0.857375, 0.045125, 0.0475, 0.05], rtol=1e-6)
  assert abs(w(4).sum() - 1) < 1e-6


def test_weighted_buffer_sampling_probabilities():
  weights = ailboost.boosting_weights(3, 5, ETA)             # [0.9025, 0.0475, 0.05, 0, 0]
  who, idx = jax.jit(lambda k: ailboost.sample_weighted(k, weights, 4, 200_000))(
      jax.random.PRNGKey(0))
  who, idx = np.asarray(who), np.asarray(idx)
  freq = np.bincount(who * 4 + idx, minlength=20).reshape(5, 4) / len(who)
  want = np.repeat(np.asarray(weights)[:, None] / 4, 4, axis=1)   # P(learner j, sample i)
  np.testing.assert_allclose(freq, want, atol=4e-3)
  assert freq[3:].sum() == 0                                  # learners not yet added


def test_discriminator_loss_by_hand():
  w, b = np.array([0.5, -1.0]), 0.2
  net = MLP((), 1)
  params = {"params": {"Dense_0": {"kernel": jnp.asarray(w[:, None], jnp.float32),
                                   "bias": jnp.asarray([b], jnp.float32)}}}
  x_e = np.array([[1.0, 0.0], [0.5, 2.0]])
  x_p = np.array([[-1.0, 1.0], [0.0, 0.0]])
  g_e, g_p = x_e @ w + b, x_p @ w + b
  want = np.mean(np.exp(-g_e)) + np.mean(g_p)
  gp = (np.linalg.norm(w) - 1) ** 2                           # ∇g = w for a linear g
  loss, aux = ailboost.discriminator_loss(params, net, jnp.asarray(x_e, jnp.float32),
                                          jnp.asarray(x_p, jnp.float32), jax.random.PRNGKey(0),
                                          10.0)
  np.testing.assert_allclose(aux["disc_loss"], want, rtol=1e-5)
  np.testing.assert_allclose(loss, want + 10 * gp, rtol=1e-5)


def test_mixture_policy_samples_members_with_their_weights():
  """Three members whose mean actions are tanh(0.1), tanh(0.5), tanh(0.9) everywhere."""
  net = MLP((), 2)
  member = lambda loc: {"params": {"Dense_0": {"kernel": jnp.zeros((1, 2)),
                                               "bias": jnp.array([loc, 0.0])}}}
  ensemble = jax.tree.map(lambda *x: jnp.stack(x), member(0.1), member(0.5), member(0.9))
  weights = jnp.array([0.2, 0.3, 0.5])
  policy = ailboost.mixture_policy(net, {"ensemble": ensemble, "weights": weights},
                                   jax.random.PRNGKey(3))
  obs = jnp.zeros((50_000, 1))
  first = np.asarray(policy(obs, jax.random.PRNGKey(0)))[:, 0]
  again = np.asarray(policy(obs, jax.random.PRNGKey(1)))[:, 0]
  np.testing.assert_array_equal(first, again)                 # one member per episode
  freq = [np.mean(np.isclose(first, np.tanh(m))) for m in (0.1, 0.5, 0.9)]
  np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.01)


def test_ailboost_imitates_a_scripted_expert(tmp_path):
  """Two seeds, no env reward: the newest weak learner holds the pole far longer than the
  initial policy, and the ensemble's weights are the boosting weights."""
  from tests.algorithms.learning import before_and_after  # pylint: disable=import-outside-toplevel
  from tests.algorithms.test_dac import scripted_demos  # pylint: disable=import-outside-toplevel
  env = scripted_demos(str(tmp_path / "demos"))
  config = ailboost.AILBoostConfig(
      demos=str(tmp_path / "demos"), total_steps=12_000, learner_steps=1024, num_samples=512,
      num_envs=8, unroll_length=8, utd_ratio=0.25, batch_size=128, buffer_size=50_000,
      learning_starts=1_000, hidden=(64, 64), disc_batch_size=128, disc_steps=50,
      actor_learning_rate=3e-4, critic_learning_rate=3e-4, alpha_learning_rate=3e-4)
  agent = ailboost.make_agent(config, env)
  rounds = 12_000 // agent.steps_per_update
  before, after, metrics, state = before_and_after(agent, env, rounds)
  assert (before < 40).all(), before
  assert (after > 2.2 * before).all() and after.mean() > 75, (before, after)
  np.testing.assert_allclose(agent.policy_params(jax.tree.map(lambda x: x[0], state))["weights"],
                             ailboost.boosting_weights(rounds + 1, config.max_learners, ETA),
                             rtol=1e-5)
  assert np.isfinite(np.asarray(metrics["disc_loss"])).all()
