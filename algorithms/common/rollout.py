"""Collecting experience from a batch of auto-resetting envs with `lax.scan`."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from envs import Env, EnvState, batch_step


@struct.dataclass
class Transition:
  """A batch of transitions; every field has leading axes [T, B] (or [B]).

  obs: [..., obs] observation acted on; action: [..., act] in [-1, 1];
  extras: whatever the policy returned besides the action (e.g. pre-tanh `u`,
  `log_prob`); reward, terminated, truncated: [...]; next_obs: [..., obs] the
  successor observation (before any auto-reset, so it bootstraps truncations);
  episode_return: [...] return of the episode that ended here (0 elsewhere).
  """

  obs: jax.Array
  action: jax.Array
  extras: dict
  reward: jax.Array
  terminated: jax.Array
  truncated: jax.Array
  next_obs: jax.Array
  episode_return: jax.Array


PolicyFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, dict]]


def env_step(env: Env, state: EnvState, policy: PolicyFn,
             key: jax.Array) -> tuple[EnvState, Transition]:
  """One step of a batch: policy(obs [B, d], key) -> (action [B, a], extras)."""
  action, extras = policy(state.obs, key)
  nxt = batch_step(env, state, action)
  return nxt, Transition(
      obs=state.obs, action=action, extras=extras, reward=nxt.reward,
      terminated=nxt.terminated, truncated=nxt.truncated,
      next_obs=nxt.info["final_obs"], episode_return=nxt.info["final_return"])


def rollout(env: Env, state: EnvState, policy: PolicyFn, key: jax.Array,
            length: int) -> tuple[EnvState, Transition]:
  """`length` steps of a batch of envs -> (last EnvState [B], Transition [length, B])."""

  def body(s, k):
    return env_step(env, s, policy, k)

  return jax.lax.scan(body, state, jax.random.split(key, length))


def episode_stats(tr: Transition) -> dict[str, jax.Array]:
  """Mean return of the episodes that ended in `tr` (NaN if none) and their count."""
  done = (tr.terminated | tr.truncated).astype(jnp.float32)
  n = done.sum()
  mean = jnp.where(n > 0, (tr.episode_return * done).sum() / jnp.maximum(n, 1.0), jnp.nan)
  return {"episode_return": mean, "episodes": n}
