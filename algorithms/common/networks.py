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


class MeanAndFreeScale(nn.Module):
  """Gaussian policy head with a state-independent scale: [..., in] -> [..., 2*out].

  The first `out` columns are an MLP's means; the last `out` are one learned
  pre-softplus scale vector (initialised to 0) broadcast over the batch, so the
  output plugs into `distributions.gaussian` like a state-dependent head's. This is
  the scale of CleanRL-style PPO (`actor_logstd`, a parameter), as the PROPS authors'
  `utils.Agent`; their scale is exp(log_std) from log_std = 0 (std 1), ours
  softplus(0) + min_std ≈ 0.69, which is the state-dependent head's initial scale too,
  so that an ablation changes only the scale's dependence on the state.
  """

  hidden: Sequence[int]
  out: int
  activation: str = "swish"
  final_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    mean = MLP(self.hidden, self.out, self.activation, self.final_scale)(x)
    pre_scale = self.param("pre_scale", nn.initializers.zeros, (self.out,))
    return jnp.concatenate([mean, jnp.broadcast_to(pre_scale, mean.shape)], axis=-1)


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
