"""Flax networks shared by the agents."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """Fully connected net: [..., in] -> [..., out]; `activation` between layers.

  Hidden layers use LeCun-uniform initialisation (as Brax); the last layer's weights
  are scaled by `final_scale` (a small value keeps the initial policy near uniform).
  """

  hidden: Sequence[int]
  out: int
  activation: str = "swish"
  final_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = getattr(nn, self.activation)
    for width in self.hidden:
      x = act(nn.Dense(width, kernel_init=nn.initializers.lecun_uniform())(x))
    init = nn.initializers.variance_scaling(self.final_scale, "fan_in", "uniform")
    return nn.Dense(self.out, kernel_init=init)(x)


class ValueNet(nn.Module):
  """State value: [..., obs] -> [...]."""

  hidden: Sequence[int]
  activation: str = "swish"

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    return jnp.squeeze(MLP(self.hidden, 1, self.activation)(obs), -1)


class QNet(nn.Module):
  """`num` independent action values: (obs [..., d], action [..., a]) -> [..., num]."""

  hidden: Sequence[int]
  num: int = 2
  activation: str = "relu"

  @nn.compact
  def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
    x = jnp.concatenate([obs, action], axis=-1)
    return jnp.concatenate(
        [MLP(self.hidden, 1, self.activation)(x) for _ in range(self.num)], axis=-1)


def polyak(target, online, tau: float):
  """Soft target update τ·online + (1 − τ)·target, leaf by leaf."""
  return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)
