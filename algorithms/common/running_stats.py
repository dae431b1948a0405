"""Running mean/variance of observations, carried in the agent's state (no globals)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
  """Count, mean and sum of squared deviations (Chan et al.'s parallel Welford).

  Attributes: count [] float32, mean [d], m2 [d].
  """

  count: jax.Array
  mean: jax.Array
  m2: jax.Array

  @classmethod
  def create(cls, size: int) -> "RunningStats":
    """Empty statistics for vectors of length `size` (normalises as identity)."""
    return cls(jnp.zeros((), jnp.float32), jnp.zeros((size,), jnp.float32),
               jnp.zeros((size,), jnp.float32))

  def update(self, x: jax.Array) -> "RunningStats":
    """Adds a batch x [..., d] (all leading axes are samples)."""
    x = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    n = jnp.float32(x.shape[0])
    batch_mean = x.mean(0)
    batch_m2 = ((x - batch_mean) ** 2).sum(0)
    total = self.count + n
    delta = batch_mean - self.mean
    mean = self.mean + delta * n / total
    m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
    return RunningStats(total, mean, m2)

  @property
  def std(self) -> jax.Array:
    """[d] population standard deviation, floored at 1e-6 (1 before any data)."""
    var = jnp.where(self.count > 0, self.m2 / jnp.maximum(self.count, 1.0), 1.0)
    return jnp.sqrt(jnp.maximum(var, 1e-12))

  def normalize(self, x: jax.Array, clip: float = 10.0) -> jax.Array:
    """(x - mean) / std, clipped to [-clip, clip]; x [..., d]."""
    return jnp.clip((x - self.mean) / self.std, -clip, clip)
