"""Comparing `dmc/` with `dmc_native/` (dm_control) from the same state under the same actions."""

from __future__ import annotations

import functools

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from envs.episodes import Policy
from envs.native_dmc import NativeDMCEnv
from envs.types import Env


def linear_policy(obs_size: int, action_size: int):
  """tanh(0.3 · obs @ G), G [obs_size, action_size] ~ N(0, 1) from PRNGKey(0);
  (obs [..., obs_size], key) -> action [..., action_size]."""
  gain = jax.random.normal(jax.random.PRNGKey(0), (obs_size, action_size))
  return lambda obs, key: jnp.tanh(0.3 * obs @ gain)



class NativeRollout(NamedTuple):
  """A dm_control episode and the start state it came from (T steps)."""
  qpos: np.ndarray            # [nq] start state
  qvel: np.ndarray            # [nv]
  target: Optional[np.ndarray]  # [3] world position of the 'target' geom/site, if any
  actions: np.ndarray         # [T, a]
  obs: np.ndarray             # [T, o] after each step
  rewards: np.ndarray         # [T]


def native_rollout(native: NativeDMCEnv, policy: Policy, seed: int, steps: int) -> NativeRollout:
  """Resets `native` with PRNGKey(seed) and runs `policy(obs [o], key)` for `steps` steps."""
  state = native.reset(jax.random.PRNGKey(seed))
  physics = native.physics
  qpos, qvel = physics.data.qpos.copy(), physics.data.qvel.copy()
  target = None
  for kind in ("geom", "site"):
    names = [physics.model.id2name(i, kind) for i in range(getattr(physics.model, f"n{kind}"))]
    if "target" in names:
      target = getattr(physics.named.data, f"{kind}_xpos")["target"].copy()
      break
  acts, obs, rews = [], [], []
  for _ in range(steps):
    a = np.asarray(policy(jnp.asarray(state.obs), None))
    state = native.step(state, a)
    acts.append(a)
    obs.append(state.obs)
    rews.append(state.reward)
  return NativeRollout(qpos, qvel, target, np.stack(acts), np.stack(obs), np.asarray(rews))


@functools.lru_cache(maxsize=8)
def _replayer(env: Env):
  """Jitted (reset, sync, run) for `env`, compiled once however many rollouts replay."""
  # pylint: disable=import-outside-toplevel
  from envs.playground import _sync
  base = env.unwrapped

  def body(s, a):
    s = base.step(s, a)
    return s, (s.obs, s.reward)

  return (jax.jit(base.reset), jax.jit(_sync),
          jax.jit(lambda s, a: jax.lax.scan(body, s, a)))


def replay(env: Env, rollout: NativeRollout) -> tuple[np.ndarray, np.ndarray]:
  """Runs the `dmc/` env `env` from `rollout`'s start state (and target, a mocap body in
  Playground) under its actions, open loop -> (obs [T, o], rewards [T])."""
  reset, sync, run = _replayer(env)
  pg = env.unwrapped.backend_env
  state = reset(jax.random.PRNGKey(0))
  dtype = state.sim.data.qpos.dtype
  data = state.sim.data.replace(qpos=jnp.asarray(rollout.qpos, dtype),
                                qvel=jnp.asarray(rollout.qvel, dtype))
  if rollout.target is not None and pg.mj_model.nmocap:
    data = data.replace(mocap_pos=data.mocap_pos.at[0].set(jnp.asarray(rollout.target, dtype)))
  state = state.replace(sim=state.sim.replace(data=sync(pg.mjx_model, data)))
  _, (obs, rew) = run(state, jnp.asarray(rollout.actions))
  return np.asarray(obs), np.asarray(rew)
