"""Wrappers: small functions of envs (episode limit, auto-reset, batching).

`envs.make` stacks them as `AutoReset(EpisodeLimit(backend))`; batching is plain
`jax.vmap` over `reset`/`step` (see `envs.batch_reset`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.types import Env, EnvState, Wrapper


class EpisodeLimit(Wrapper):
  """Truncates episodes after `episode_length` steps; tracks steps and the return.

  `truncated` is set only when the limit is hit without termination, so a terminal
  last step stays `terminated` (no bootstrap).
  info: `steps` [] int32, `episode_return` [] float32 (undiscounted, this episode).
  """

  def __init__(self, env: Env, episode_length: int):
    super().__init__(env)
    if episode_length <= 0:
      raise ValueError(f"episode_length must be positive, got {episode_length}")
    self.episode_length = int(episode_length)

  def reset(self, key):
    state = self.env.reset(key)
    info = dict(state.info, steps=jnp.zeros((), jnp.int32),
                episode_return=jnp.zeros((), jnp.float32))
    return state.replace(info=info)

  def step(self, state, action):
    nxt = self.env.step(state, action)
    steps = state.info["steps"] + 1
    truncated = (steps >= self.episode_length) & ~nxt.terminated
    info = dict(nxt.info, steps=steps,
                episode_return=state.info["episode_return"] + nxt.reward)
    return nxt.replace(truncated=truncated | nxt.truncated, info=info)


AUTO_RESET_MODES = ("fresh", "cached")


class AutoReset(Wrapper):
  """Starts a new episode in the same step as the old one ends.

  The returned state after a finished episode holds the *new* episode's first
  observation in `obs`, while `reward`, `terminated`, `truncated` describe the finished
  transition; the observation the episode ended in is kept in `info["final_obs"]`
  (equal to `obs` when the episode did not end), so truncated episodes can be
  bootstrapped. `info["final_return"]` holds the finished episode's return.

  Modes:
    fresh: each new episode starts from an initial state drawn with a new key. The
      reset is evaluated every step and selected where done (the cost of one reset per
      step; exact initial-state distribution).
    cached: each env slot draws one initial state at `reset` and restarts from it
      (Brax / Playground's convention). No reset cost per step, but a slot repeats its
      initial state. Use for tasks whose reset is expensive (dmc/cheetah_* simulates
      200 steps to settle) or never terminate early.
  """

  def __init__(self, env: Env, mode: str = "fresh"):
    super().__init__(env)
    if mode not in AUTO_RESET_MODES:
      raise ValueError(f"auto_reset must be one of {AUTO_RESET_MODES}, got {mode!r}")
    self.mode = mode

  def reset(self, key):
    key, sub = jax.random.split(key)
    state = self.env.reset(sub)
    info = dict(state.info, final_obs=state.obs,
                final_return=jnp.zeros((), jnp.float32))
    if self.mode == "fresh":
      info["reset_key"] = key
    else:
      info["reset_state"] = state
    return state.replace(info=info)

  def _inner(self, state: EnvState) -> EnvState:
    info = {k: v for k, v in state.info.items()
            if k not in ("final_obs", "final_return", "reset_key", "reset_state")}
    return state.replace(info=info)

  def step(self, state, action):
    nxt = self.env.step(self._inner(state), action)
    done = nxt.terminated | nxt.truncated
    extra = {}
    if self.mode == "fresh":
      key, sub = jax.random.split(state.info["reset_key"])
      fresh = self.env.reset(sub)
      extra["reset_key"] = key
    else:
      fresh = state.info["reset_state"]
      extra["reset_state"] = fresh
    merged = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, nxt)
    info = dict(merged.info, final_obs=nxt.obs,
                final_return=jnp.where(done, nxt.info.get("episode_return", 0.0), 0.0),
                **extra)
    return merged.replace(reward=nxt.reward, terminated=nxt.terminated,
                          truncated=nxt.truncated, info=info)


def batch_reset(env: Env, key: jax.Array, num_envs: int) -> EnvState:
  """Resets `num_envs` independent copies: key [2] -> EnvState with leading [num_envs]."""
  return jax.vmap(env.reset)(jax.random.split(key, num_envs))


def batch_step(env: Env, state: EnvState, action: jax.Array) -> EnvState:
  """Steps a batch: (EnvState [B], action [B, action_size]) -> EnvState [B]."""
  return jax.vmap(env.step)(state, action)
