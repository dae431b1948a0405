"""GAE, running statistics and the tanh-Gaussian against hand-computed numbers."""

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.common import distributions
from algorithms.common.gae import gae
from algorithms.common.running_stats import RunningStats


def test_gae_hand_computed_with_truncation_and_termination():
  # Step 2 is truncated (bootstrap from its final obs, trace cut), step 3 terminated.
  g, lam = 0.9, 0.8
  rewards = jnp.array([1.0, 1.0, 1.0, 1.0])
  values = jnp.array([0.5, 0.6, 0.7, 0.8])
  next_values = jnp.array([0.6, 0.7, 0.9, 0.4])
  terminated = jnp.array([False, False, False, True])
  done = jnp.array([False, False, True, True])
  adv, target = gae(rewards, values, next_values, terminated, done, g, lam)
  a3 = 1.0 - 0.8                        # no bootstrap after termination
  a2 = 1.0 + 0.9 * 0.9 - 0.7            # bootstraps V(final obs); trace cut
  a1 = (1.0 + 0.9 * 0.7 - 0.6) + g * lam * a2
  a0 = (1.0 + 0.9 * 0.6 - 0.5) + g * lam * a1
  np.testing.assert_allclose(adv, [a0, a1, a2, a3], rtol=1e-6)
  np.testing.assert_allclose(target, np.array([a0, a1, a2, a3]) + values, rtol=1e-6)
  np.testing.assert_allclose(a0, 2.357024, rtol=1e-6)


def test_gae_batched_matches_columns():
  key = jax.random.PRNGKey(0)
  r, v, nv = jax.random.normal(key, (3, 7, 5))
  term = jax.random.bernoulli(jax.random.PRNGKey(1), 0.2, (7, 5))
  done = term | jax.random.bernoulli(jax.random.PRNGKey(2), 0.1, (7, 5))
  adv, _ = gae(r, v, nv, term, done, 0.99, 0.95)
  for b in range(5):
    col, _ = gae(r[:, b], v[:, b], nv[:, b], term[:, b], done[:, b], 0.99, 0.95)
    np.testing.assert_allclose(adv[:, b], col, rtol=1e-5, atol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value():
  r = jnp.array([1.0, 2.0, 3.0])
  v = jnp.array([0.3, 0.2, 0.1])
  nv = jnp.array([0.2, 0.1, 5.0])
  f = jnp.zeros(3, bool)
  adv, _ = gae(r, v, nv, f, f, 0.5, 1.0)
  mc = np.array([1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 5, 2 + 0.5 * 3 + 0.25 * 5, 3 + 0.5 * 5])
  np.testing.assert_allclose(adv, mc - np.asarray(v), rtol=1e-6)


def test_running_stats_match_numpy():
  rng = np.random.default_rng(0)
  batches = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) for n in (5, 17, 1, 64)]
  stats = RunningStats.create(4)
  np.testing.assert_array_equal(stats.normalize(jnp.ones(4)), jnp.ones(4))
  for b in batches:
    stats = stats.update(jnp.asarray(b))
  allx = np.concatenate(batches)
  np.testing.assert_allclose(stats.mean, allx.mean(0), rtol=1e-5)
  np.testing.assert_allclose(stats.std, allx.std(0), rtol=1e-4)
  assert float(stats.count) == len(allx)
  z = stats.normalize(jnp.asarray(allx))
  np.testing.assert_allclose(np.asarray(z).mean(0), 0.0, atol=1e-4)


def test_tanh_log_prob_matches_change_of_variables():
  raw = jnp.array([[0.3, -0.5, 0.1, 0.2]])  # loc (0.3, -0.5), pre-scale (0.1, 0.2)
  u = jnp.array([[0.4, -1.2]])
  a = jnp.tanh(u)
  loc, scale = np.array([0.3, -0.5]), np.log1p(np.exp([0.1, 0.2])) + 1e-3
  gauss = -0.5 * ((np.asarray(u[0]) - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
  expected = gauss.sum() - np.log(1 - np.tanh(np.asarray(u[0])) ** 2).sum()
  np.testing.assert_allclose(distributions.log_prob_action(raw, a)[0], expected, rtol=1e-5)
  np.testing.assert_allclose(distributions.tanh_gaussian(raw).log_prob(a)[0], expected, rtol=1e-4)


def test_valid_minibatches_take_valid_rows_first():
  """10 entries of which 5 valid (a filling buffer), minibatches of 2: three minibatches
  hold the valid entries (the last one half), the other two are inactive."""
  from algorithms.common.minibatches import valid_minibatches  # pylint: disable=import-outside-toplevel
  x = jnp.arange(10.0)
  mask = jnp.array([False] * 5 + [True] * 5)
  mbs, active = valid_minibatches(jax.random.PRNGKey(0), {"x": x}, mask, 2)
  assert mbs["x"].shape == (5, 2) and mbs["mask"].shape == (5, 2)
  np.testing.assert_array_equal(active, [True, True, True, False, False])
  np.testing.assert_array_equal(np.asarray(mbs["mask"]).sum(1), [2, 2, 1, 0, 0])
  valid_seen = np.asarray(mbs["x"])[np.asarray(mbs["mask"])]
  assert sorted(valid_seen.tolist()) == [5.0, 6.0, 7.0, 8.0, 9.0]
  # A size that does not divide n pads with invalid rows: 10 entries, size 4 -> 3 chunks.
  mbs, active = valid_minibatches(jax.random.PRNGKey(1), {"x": x}, jnp.ones(10, bool), 4)
  assert mbs["x"].shape == (3, 4) and np.asarray(mbs["mask"]).sum() == 10
  np.testing.assert_array_equal(active, [True, True, True])
