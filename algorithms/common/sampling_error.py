"""Sampling error of a batch of on-policy data, as PROPS measures it (Corrado & Hanna).

The sampling error of data D = {(s_i, a_i)} with respect to a target policy π_θ is the
KL divergence between the empirical policy π_D (the maximum-likelihood fit of a policy
to D) and π_θ, averaged over the states of D:

    SE(D, π_θ) = mean_{(s, a) ∈ D} [ log π_D(a|s) − log π_θ(a|s) ]  ≈  E_{s∈D} KL(π_D ‖ π_θ)

(the authors' code, `PPOROS` at the paper's commit: a Monte-Carlo estimate over the
buffer's own actions). π_D is fitted by starting from π_θ and training the output layer
and every bias by Adam on −mean log π_D(a|s), hidden weights frozen, as their code does.
With tanh-squashed Gaussians the tanh Jacobian cancels, so everything is in terms of
the pre-tanh actions u.

`gaussian_sampling_error` is the closed form for a state-independent Gaussian policy:
π_D is then N(mean(u), var(u)) (MLE, ddof = 0) and SE = KL(π_D ‖ π_θ) exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from algorithms.common import distributions
from algorithms.common.minibatches import shuffled_minibatches


def gaussian_kl(loc_p: jax.Array, scale_p: jax.Array, loc_q: jax.Array,
                scale_q: jax.Array) -> jax.Array:
  """KL(N(loc_p, scale_p²) ‖ N(loc_q, scale_q²)) of diagonal Gaussians [..., a] -> [...]."""
  return jnp.sum(jnp.log(scale_q / scale_p)
                 + (scale_p**2 + (loc_p - loc_q) ** 2) / (2 * scale_q**2) - 0.5, axis=-1)


def gaussian_sampling_error(u: jax.Array, loc: jax.Array, scale: jax.Array) -> jax.Array:
  """Closed-form SE of samples u [N, a] for the policy N(loc, scale²) ([a] each) -> []."""
  return gaussian_kl(u.mean(0), u.std(0), loc, scale)


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """Fitting π_D: Adam steps over minibatches, learning rate, gradient-norm clip."""

  num_epochs: int = 100
  num_minibatches: int = 4
  learning_rate: float = 1e-3
  max_grad_norm: float = 1.0


def _trainable(params: Any) -> Any:
  """True for every bias and for the last Dense layer's kernel (the rest is frozen); with
  a state-independent scale (`networks.MeanAndFreeScale`: the MLP's layers under 'MLP_0'
  beside 'pre_scale'), the MLP's layers by the same rule and the scale vector trainable,
  as the bias it is."""

  def mlp(layers):
    last = max(layers, key=lambda n: int(n.split("_")[-1]))
    return {name: {k: (k == "bias" or name == last) for k in layer}
            for name, layer in layers.items()}

  tree = params["params"]
  if "MLP_0" in tree:
    return {"params": {name: mlp(sub) if name == "MLP_0" else True
                       for name, sub in tree.items()}}
  return {"params": mlp(tree)}


def sampling_error(policy_net: nn.Module, params: Any, obs: jax.Array, u: jax.Array,
                   key: jax.Array, mask: Optional[jax.Array] = None, min_std: float = 1e-3,
                   config: FitConfig = FitConfig()) -> jax.Array:
  """SE of data (obs [N, d] as the net takes them, pre-tanh actions u [N, a]) -> [].

  params: π_θ's flax params of `policy_net` (an `algorithms.common.networks.MLP` emitting
  2a Gaussian parameters, or a `MeanAndFreeScale`); mask [N] (bool) leaves out entries
  (e.g. an unfilled buffer).
  N must be divisible by config.num_minibatches.
  """
  n = obs.shape[0]
  mask = jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)
  opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                    optax.masked(optax.adam(config.learning_rate), _trainable(params)),
                    optax.masked(optax.set_to_zero(),
                                 jax.tree.map(lambda t: not t, _trainable(params))))

  def log_prob(p, o, uu):
    return distributions.gaussian(policy_net.apply(p, o), min_std).log_prob(uu)

  def nll(p, o, uu, m):
    return -jnp.sum(log_prob(p, o, uu) * m) / jnp.maximum(jnp.sum(m), 1.0)

  def step(carry, mb):
    p, s = carry
    grads = jax.grad(nll)(p, *mb)
    updates, s = opt.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), None

  def epoch(carry, k):
    mbs = shuffled_minibatches(k, (obs, u, mask), config.num_minibatches)
    return jax.lax.scan(step, carry, mbs)[0], None

  (fitted, _), _ = jax.lax.scan(epoch, (params, opt.init(params)),
                                jax.random.split(key, config.num_epochs))
  gap = log_prob(fitted, obs, u) - log_prob(params, obs, u)
  return jnp.sum(gap * mask) / jnp.maximum(jnp.sum(mask), 1.0)
