"""Running a policy for whole episodes: returns on jittable and on host (native) envs."""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from envs.types import Env
from envs.wrappers import batch_reset

Policy = Callable[[jax.Array, jax.Array], jax.Array]


def episode_returns(env: Env, policy: Policy, key: jax.Array, num_episodes: int,
                    max_steps: Optional[int] = None, discount: float = 1.0) -> jax.Array:
  """Returns Σ_t γ^t r_t of `num_episodes` episodes run in parallel -> [num_episodes].

  Pure and jittable. policy(obs [num_episodes, d], key) -> action [num_episodes, a].
  Each episode counts rewards up to its first termination or truncation (the env's
  auto-reset is ignored after that) or `max_steps` (default `env.episode_length`).
  `discount` defaults to 1 (undiscounted).
  """
  k_reset, k_act = jax.random.split(key)
  state = batch_reset(env, k_reset, num_episodes)

  def body(carry, k):
    s, alive, ret = carry
    nxt = jax.vmap(env.step)(s, policy(s.obs, k))
    ret = ret + alive * nxt.reward
    alive = alive * discount * (1.0 - (nxt.terminated | nxt.truncated).astype(jnp.float32))
    return (nxt, alive, ret), None

  init = (state, jnp.ones((num_episodes,)), jnp.zeros((num_episodes,)))
  steps = max_steps or env.episode_length
  (_, _, ret), _ = jax.lax.scan(body, init, jax.random.split(k_act, steps))
  return ret


def native_episode_returns(env: Env, policy: Policy, key: jax.Array,
                           num_episodes: int) -> np.ndarray:
  """The same for a host env (`dmc_native/`), one episode after another -> [num_episodes].

  policy(obs [1, d], key) -> action [1, a] (the batched signature, called with B = 1).
  """
  out = []
  for k in jax.random.split(key, num_episodes):
    k_reset, k_act = jax.random.split(k)
    state = env.reset(k_reset)
    while not (state.terminated or state.truncated):
      k_act, k_step = jax.random.split(k_act)
      state = env.step(state, np.asarray(policy(state.obs[None], k_step))[0])
    out.append(float(state.info["episode_return"]))
  return np.asarray(out)
