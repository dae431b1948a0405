"""Candidate policies for OPE sweeps, and their true values by on-policy Monte-Carlo.

A candidate is a tanh-Gaussian policy network's params (with observation statistics)
and a temperature τ that scales the Gaussian's standard deviation: a = tanh(u),
u ~ N(μ(s), (τ σ(s))²). τ = 0 is the deterministic policy tanh(μ(s)). Pools are
stacked pytrees with a leading [P] axis, so everything below vmaps over candidates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from algorithms.common import distributions
from envs import Env, episode_returns


@dataclasses.dataclass(frozen=True)
class TanhGaussianFamily:
  """Sampling, densities and means of candidates {'params', 'temperature'}."""

  policy_net: nn.Module
  min_std: float = 1e-3

  def _dist(self, cand, obs):
    raw = self.policy_net.apply(cand["params"]["policy"],
                                cand["params"]["obs_stats"].normalize(obs))
    loc, pre = jnp.split(raw, 2, axis=-1)
    scale = (jax.nn.softplus(pre) + self.min_std) * cand["temperature"]
    return loc, scale

  def sample(self, cand, obs: jax.Array, key: jax.Array) -> jax.Array:
    """obs [M, d] -> actions [M, a] (the mean action when τ = 0)."""
    loc, scale = self._dist(cand, obs)
    return jnp.tanh(loc + scale * jax.random.normal(key, loc.shape))

  def log_prob(self, cand, obs: jax.Array, action: jax.Array) -> jax.Array:
    """log π(a | s) of actions [..., a] in (-1, 1) (τ > 0)."""
    loc, scale = self._dist(cand, obs)
    u = jnp.arctanh(jnp.clip(action, -1.0 + 1e-6, 1.0 - 1e-6))
    return (distrax.MultivariateNormalDiag(loc, scale).log_prob(u)
            - distributions.tanh_log_det(u))

  def mean_action(self, cand, obs: jax.Array) -> jax.Array:
    """tanh(μ(s)) [..., a]."""
    return jnp.tanh(self._dist(cand, obs)[0])


@dataclasses.dataclass(frozen=True)
class DeterministicFamily:
  """Candidates acting with an agent's deterministic policy, `make_policy(params, True)`
  (any agent of `algorithms/`: e.g. the offline agents' actors): {'params': policy params,
  'temperature': 0}. They have no density: OPE uses the action kernel."""

  make_policy: Any

  def sample(self, cand, obs: jax.Array, key: jax.Array) -> jax.Array:
    """obs [M, d] -> the policy's action [M, a] (the key is unused)."""
    return self.make_policy(cand["params"], True)(obs, key)

  def mean_action(self, cand, obs: jax.Array) -> jax.Array:
    """The policy's action [..., a]."""
    flat = obs.reshape(-1, obs.shape[-1])
    out = self.make_policy(cand["params"], True)(flat, jax.random.PRNGKey(0))
    return out.reshape(obs.shape[:-1] + out.shape[-1:])

  def log_prob(self, cand, obs, action):
    raise ValueError("deterministic candidates have no density; use the action kernel")


def make_pool(policy_params: list[Any], temperatures: list[float]) -> dict:
  """Every (params, temperature) pair, stacked: {'params': [P, ...], 'temperature': [P]}.

  Candidate p uses policy_params[p // len(temperatures)] at temperatures[p % len(...)].
  """
  params = [p for p in policy_params for _ in temperatures]
  temps = [t for _ in policy_params for t in temperatures]
  return {"params": jax.tree.map(lambda *x: jnp.stack(x), *params),
          "temperature": jnp.asarray(temps, jnp.float32)}


def true_returns(env: Env, family: TanhGaussianFamily, pool: dict, key: jax.Array,
                 num_episodes: int, horizon: int, discount: float) -> jax.Array:
  """On-policy Monte-Carlo returns Σ_{t<T} γ^t r_t of every candidate -> [P, num_episodes]
  (each episode at most `horizon` steps)."""

  def one(cand):
    return episode_returns(env, lambda obs, k: family.sample(cand, obs, k), key,
                           num_episodes, max_steps=horizon, discount=discount)

  return jax.vmap(one)(pool)


def true_values(env: Env, family: TanhGaussianFamily, pool: dict, key: jax.Array,
                num_episodes: int, horizon: int, discount: float) -> tuple[jax.Array, jax.Array]:
  """On-policy Monte-Carlo values of every candidate -> (mean [P], standard error [P])
  of `true_returns`."""
  returns = true_returns(env, family, pool, key, num_episodes, horizon, discount)
  return returns.mean(1), returns.std(1, ddof=1) / jnp.sqrt(num_episodes)
