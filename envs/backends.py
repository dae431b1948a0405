"""Adapters from Brax and MuJoCo Playground (MJX) envs to the `EnvState` protocol.

Both adapters are pure and jittable; they report backend termination only
(`truncated` is added by `envs.wrappers.EpisodeLimit`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.types import Env, EnvState


def to_env_state(bstate) -> EnvState:
  """A Brax or Playground state (`.obs`, `.reward`, `.done`) as an `EnvState` (sim = it)."""
  # Explicit dtypes drop weak types (Brax's `done` is a weak float in step, not in reset),
  # so reset and step states have identical types and jitted loops compile once.
  return EnvState(
      obs=jnp.asarray(bstate.obs, jnp.float32),
      reward=jnp.asarray(bstate.reward, jnp.float32),
      terminated=jnp.asarray(jnp.asarray(bstate.done) > 0.5, bool),
      truncated=jnp.zeros((), bool),
      info={},
      sim=bstate,
  )


class BackendEnv(Env):
  """Wraps any env with `reset(rng)`/`step(state, action)` returning `.obs/.reward/.done`.

  Brax and Playground share that shape. Actions are clipped to [-1, 1], which both
  backends' envs take as their action space (Brax envs scale to actuator range
  themselves; DM Control actuators are [-1, 1]).
  """

  def __init__(self, name: str, backend_env, episode_length: int):
    self.name = name
    self.backend_env = backend_env
    # From the abstract reset: Brax's own `observation_size` runs a reset eagerly, op by
    # op (~270 tiny compilations, 7 s on a CPU core for inverted_pendulum).
    obs = jax.eval_shape(backend_env.reset, jax.random.PRNGKey(0)).obs
    if not hasattr(obs, "shape") or len(obs.shape) != 1:
      raise ValueError(f"{name}: only flat observations are supported, got {obs}")
    self.observation_size = int(obs.shape[-1])
    self.action_size = int(backend_env.action_size)
    self.episode_length = int(episode_length)

  def reset(self, key: jax.Array) -> EnvState:
    return to_env_state(self.backend_env.reset(key))

  def step(self, state: EnvState, action: jax.Array) -> EnvState:
    action = jnp.clip(action, -1.0, 1.0)
    return to_env_state(self.backend_env.step(state.sim, action))
