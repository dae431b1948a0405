"""The clipped value loss of PPO implementations (OpenAI baselines' `cliprange_vf`,
CleanRL's `clip_vloss`), shared by PPO, MDPO and PROPS."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clipped_value_loss(values: jax.Array, old_values: jax.Array, target: jax.Array,
                       clip: float) -> jax.Array:
  """Per-sample max((V − R)², (V_old + clip(V − V_old, ±c) − R)²) [B]; (V − R)² if c <= 0.

  V may move at most c from V_old per update before the clipped term stops its gradient,
  so c is in the units of the (possibly normalised) rewards' returns.
  """
  if clip <= 0:
    return (values - target) ** 2
  clipped = old_values + jnp.clip(values - old_values, -clip, clip)
  return jnp.maximum((values - target) ** 2, (clipped - target) ** 2)
