"""Tanh-squashed Gaussian policies on top of distrax.

Actions are a = tanh(u), u ~ N(loc, scale). Agents store the pre-squash `u` so that
likelihood ratios need only the Gaussian density (the tanh Jacobian cancels);
`log_prob_action` gives the density of a in (-1, 1)^d for off-policy evaluation.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

_EPS = 1e-6


def gaussian(raw: jax.Array, min_std: float = 1e-3) -> distrax.MultivariateNormalDiag:
  """Network output raw [..., 2d] -> N(loc, diag(softplus(s) + min_std)^2) over u [..., d]."""
  loc, pre_scale = jnp.split(raw, 2, axis=-1)
  return distrax.MultivariateNormalDiag(loc, jax.nn.softplus(pre_scale) + min_std)


def tanh_gaussian(raw: jax.Array, min_std: float = 1e-3) -> distrax.Transformed:
  """The squashed policy a = tanh(u) as a distrax distribution over a [..., d]."""
  return distrax.Transformed(gaussian(raw, min_std), distrax.Block(distrax.Tanh(), 1))


def tanh_log_det(u: jax.Array) -> jax.Array:
  """log|det d tanh(u)/du| summed over the last axis: u [..., d] -> [...]."""
  return jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def entropy(raw: jax.Array, key: jax.Array, min_std: float = 1e-3) -> jax.Array:
  """One-sample estimate of the squashed policy's entropy: H[N] + E[log|det J|] -> [...]."""
  dist = gaussian(raw, min_std)
  return dist.entropy() + tanh_log_det(dist.sample(seed=key))


def log_prob_action(raw: jax.Array, action: jax.Array, min_std: float = 1e-3) -> jax.Array:
  """log pi(a | s) of squashed actions a [..., d] in (-1, 1) (clipped to ±(1-1e-6))."""
  u = jnp.arctanh(jnp.clip(action, -1.0 + _EPS, 1.0 - _EPS))
  return gaussian(raw, min_std).log_prob(u) - tanh_log_det(u)
