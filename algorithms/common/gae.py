"""Generalised advantage estimation with terminations and truncations kept apart."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(rewards: jax.Array, values: jax.Array, next_values: jax.Array,
        terminated: jax.Array, done: jax.Array, discount: float,
        lam: float) -> tuple[jax.Array, jax.Array]:
  """GAE(λ) (Schulman et al. 2016, eq. 16) over a [T, ...] segment.

    δ_t = r_t + γ (1 − terminated_t) V(s'_t) − V(s_t)
    A_t = δ_t + γ λ (1 − done_t) A_{t+1},   A_T = 0

  `next_values` are V of each transition's successor *before* auto-reset, so a
  truncated step bootstraps from the state it was cut in, a terminated one does not,
  and `done` (terminated or truncated) stops the trace at episode boundaries.

  Args: rewards, values, next_values, terminated, done: [T, ...].
  Returns: (advantages [T, ...], value targets A + V [T, ...]).
  """
  not_term = 1.0 - terminated.astype(jnp.float32)
  not_done = 1.0 - done.astype(jnp.float32)
  deltas = rewards + discount * not_term * next_values - values

  def body(carry, x):
    delta, nd = x
    adv = delta + discount * lam * nd * carry
    return adv, adv

  _, adv = jax.lax.scan(body, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True)
  return adv, adv + values
