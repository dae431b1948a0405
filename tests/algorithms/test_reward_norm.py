"""Running reward normalisation against a plain loop over VecNormalize's recursion."""

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.common import reward_norm


def _reference(rewards, dones, gamma, clip):
  """VecNormalize step by step: R ← γR + r, statistics over every R so far (population
  variance), r / sqrt(var + 1e-8) clipped, R reset after done."""
  t_len, n = rewards.shape
  ret, seen, out = np.zeros(n), [], np.zeros_like(rewards)
  for t in range(t_len):
    ret = gamma * ret + rewards[t]
    seen.extend(ret)
    out[t] = np.clip(rewards[t] / np.sqrt(np.var(seen) + 1e-8), -clip, clip)
    ret = np.where(dones[t], 0.0, ret)
  return out


def test_matches_vecnormalize_over_two_segments():
  rng = np.random.default_rng(0)
  rewards = rng.normal(5.0, 3.0, size=(40, 3))
  dones = rng.random((40, 3)) < 0.1
  want = _reference(rewards, dones, 0.99, 3.0)
  assert (np.abs(want) == 3.0).any() and (np.abs(want) < 3.0).any()   # the clip binds early
  fn = jax.jit(lambda s, r, d: reward_norm.normalize(s, r, d, 0.99, 3.0))
  state = reward_norm.RewardNormState.create(3)
  # Two segments in a row: the state carries the returns and statistics across them.
  state, first = fn(state, jnp.asarray(rewards[:25]), jnp.asarray(dones[:25]))
  state, second = fn(state, jnp.asarray(rewards[25:]), jnp.asarray(dones[25:]))
  np.testing.assert_allclose(np.concatenate([first, second]), want, rtol=2e-4, atol=1e-5)
  assert float(state.stats.count) == 120
