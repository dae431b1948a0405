"""Policies over (possibly normalised) observations, as `make_policy` / `log_prob` pairs.

Policy params are `{'policy': flax params, 'obs_stats': RunningStats}` so that a policy
is self-contained for evaluation and OPE.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from algorithms.common import distributions


def tanh_gaussian_fns(policy_net: nn.Module, min_std: float):
  """(make_policy, log_prob) for a net emitting 2*action_size Gaussian parameters.

  make_policy(params, deterministic)(obs [..., d], key) -> action [..., a]: tanh(mean)
  if deterministic, else a sample of the squashed Gaussian.
  log_prob(params, obs [..., d], action [..., a]) -> [...].
  """

  def _raw(params, obs):
    return policy_net.apply(params["policy"], params["obs_stats"].normalize(obs))

  def make_policy(params, deterministic: bool = False):
    def policy(obs, key):
      raw = _raw(params, obs)
      if deterministic:
        return jnp.tanh(jnp.split(raw, 2, axis=-1)[0])
      return distributions.tanh_gaussian(raw, min_std).sample(seed=key)
    return policy

  def log_prob(params, obs, action):
    return distributions.log_prob_action(_raw(params, obs), action, min_std)

  return make_policy, log_prob


def deterministic_fns(policy_net: nn.Module, noise_std: float):
  """(make_policy, None) for a net emitting action_size pre-tanh means (TD3-style).

  The non-deterministic policy adds N(0, noise_std²) exploration noise, clipped to
  [-1, 1]; it has no density to offer OPE, hence no log_prob.
  """
  def make_policy(params, deterministic: bool = False):
    def policy(obs, key):
      action = jnp.tanh(policy_net.apply(params["policy"], params["obs_stats"].normalize(obs)))
      if deterministic:
        return action
      return jnp.clip(action + noise_std * jax.random.normal(key, action.shape), -1.0, 1.0)
    return policy

  return make_policy, None
