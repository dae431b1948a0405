"""Divergence detection inside jitted training: one flag per seed, no host callbacks.

A training iteration diverged when the policy's parameters (and observation statistics:
`agent.policy_params`) hold a non-finite value, or when a loss-like metric (a name holding
`loss` or `kl`) exceeds `bound` in magnitude. Those are the signs of a blow-up that still
leaves finite numbers: with a learning rate of 1e4, PPO's approx_kl reaches 1e32 while
its parameters stay finite. NaN metrics are not signs (agents report NaN for "nothing
this iteration", e.g. TD3's actor loss between delayed updates); a NaN loss from NaN
parameters is caught by the parameters one iteration later at most.

The check is a few reductions over the policy parameters and the scalar metrics per
iteration; `BENCHMARKS.md` measures its cost.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from algorithms.common.agent import Agent

HEALTHY = -1  # `first_bad` of a seed that did not diverge


def watched_metrics(metrics: dict) -> list[str]:
  """The metric names whose magnitude is bounded: those holding `loss` or `kl`, sorted."""
  return sorted(k for k in metrics if "loss" in k or "kl" in k)


def check(params: Any, metrics: dict, bound: Optional[float]) -> jax.Array:
  """-> int32 []: 0 healthy, 1 non-finite params, 2 + i metric `watched_metrics()[i]` past `bound`.

  Args:
    params: the policy parameters (any pytree of arrays) of one seed.
    metrics: scalar metrics of one iteration of that seed.
    bound: largest allowed |loss|; None: no bound (non-finite params still count).
  """
  leaves = [x for x in jax.tree.leaves(params) if jnp.issubdtype(x.dtype, jnp.inexact)]
  finite = jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves])) if leaves else True
  code = jnp.where(finite, 0, 1).astype(jnp.int32)
  if bound is not None:
    for i, k in reversed(list(enumerate(watched_metrics(metrics)))):
      past = jnp.abs(metrics[k]) > bound  # NaN compares False: not a sign (see module doc)
      code = jnp.where(finite & past, 2 + i, code)
  return code


def run_guarded_updates(agent: Agent, state: Any, num_updates: int, bound: Optional[float],
                        data: Any = None) -> tuple[Any, dict, jax.Array, jax.Array]:
  """`num_updates` iterations in one `lax.scan`, checking each; one seed (vmap it).

  Returns (state, metrics stacked [num_updates], first_bad int32 [] (the index of the
  first diverged iteration, HEALTHY if none), code int32 [] (`check`'s code there)).
  The state is not frozen here: the caller restores a diverged seed (see experiments/runner).
  `data`: an offline agent's dataset (`Agent.data`).
  """

  def body(carry, i):
    s, first_bad, code = carry
    s, m = agent.step(s, data)
    c = check(agent.policy_params(s), m, bound)
    new = (first_bad == HEALTHY) & (c > 0)
    return (s, jnp.where(new, i, first_bad), jnp.where(new, c, code)), m

  init = (state, jnp.int32(HEALTHY), jnp.int32(0))
  (state, first_bad, code), metrics = jax.lax.scan(body, init, jnp.arange(num_updates))
  return state, metrics, first_bad, code


def describe(code: int, metric_names: list[str], bound: Optional[float]) -> str:
  """A `check` code > 0 in words, e.g. '|approx_kl| > 1e+10'."""
  if code == 1:
    return "non-finite policy parameters"
  return f"|{metric_names[code - 2]}| > {bound:g}"
