"""dmc_native/ (host dm_control) against dmc/ (MJX via Playground)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

TASK = "cartpole_balance"


@pytest.fixture(scope="module")
def pair():
  return envs.make(f"dmc_native/{TASK}", episode_length=30), envs.make(f"dmc/{TASK}", episode_length=30)


def test_native_protocol_and_truncation(pair):
  native, mjx = pair
  assert not native.jittable and mjx.jittable
  assert (native.observation_size, native.action_size) == (mjx.observation_size, mjx.action_size)
  s = native.reset(jax.random.PRNGKey(0))
  assert s.obs.shape == (native.observation_size,) and s.obs.dtype == np.float32
  for t in range(30):
    assert not s.truncated
    s = native.step(s, np.zeros(1))
  assert s.truncated and not s.terminated and s.info["steps"] == 30
  with pytest.raises(RuntimeError, match="after the episode ended"):
    native.step(s, np.zeros(1))
  again = native.reset(jax.random.PRNGKey(0))
  np.testing.assert_array_equal(again.obs, native.reset(jax.random.PRNGKey(0)).obs)
  assert not np.array_equal(again.obs, native.reset(jax.random.PRNGKey(1)).obs)


def test_same_state_same_trajectory(pair):
  """Copy the native initial state into MJX, apply the same actions: rewards agree."""
  native, mjx = pair
  base = mjx.unwrapped
  ns = native.reset(jax.random.PRNGKey(0))
  ms = base.reset(jax.random.PRNGKey(0))
  data = ms.sim.data.replace(qpos=jnp.asarray(native.physics.data.qpos, jnp.float32),
                             qvel=jnp.asarray(native.physics.data.qvel, jnp.float32))
  ms = ms.replace(sim=ms.sim.replace(data=data))
  step = jax.jit(base.step)
  actions = 0.8 * np.sin(0.3 * np.arange(30))[:, None]
  r_native, r_mjx = [], []
  for a in actions:
    ns, ms = native.step(ns, a), step(ms, jnp.asarray(a, jnp.float32))
    r_native.append(ns.reward)
    r_mjx.append(float(ms.reward))
    np.testing.assert_allclose(np.asarray(ms.obs), ns.obs, atol=5e-3)
  np.testing.assert_allclose(np.sum(r_mjx), np.sum(r_native), rtol=2e-3)


def test_same_policy_same_return(pair):
  """A fixed feedback policy's mean return over random initial states agrees."""
  native, mjx = pair
  gain = jnp.array([-0.5, 0.0, 2.0, -0.2, 0.3])  # obs: cart x, cos, sin, x_dot, theta_dot

  def policy(obs, key):
    return jnp.tanh(obs @ gain)[..., None]

  n = 16
  r_mjx = np.asarray(jax.jit(lambda k: envs.episode_returns(mjx, policy, k, n))(jax.random.PRNGKey(1)))
  r_nat = envs.native_episode_returns(native, jax.jit(policy), jax.random.PRNGKey(2), n)
  gap = abs(r_mjx.mean() - r_nat.mean())
  se = np.sqrt(r_mjx.var() / n + r_nat.var() / n)
  assert gap < 3 * se + 0.01 * abs(r_nat.mean()), (r_mjx.mean(), r_nat.mean(), se)
