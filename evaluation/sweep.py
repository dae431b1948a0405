"""An OPE sweep: every estimator on S logged datasets for P candidate policies, vmapped.

    data = collect_datasets(env, family, behavior, key, S, N, T)       # LoggedData [S, N, T]
    inputs = vmap(ratios_and_q)(data, ..., keys)                        # ratios, Q̂, V̂ [S, P, N, T]
    estimates = vmap(estimate)(data, inputs)                            # {name: [S, P]}
    scores = assess(estimates, true_values, behavior_values(data), ks, threshold)

All of it is pure and vmapped over datasets (S) and candidates (P); `experiments.ope_sweep`
shards the leading dataset axis over devices.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from envs import Env
from evaluation import metrics
from evaluation.candidates import TanhGaussianFamily
from evaluation.data import LoggedData, collect, discounted_returns
from evaluation.ope import FQEConfig, estimate_all, fqe, kernel_log_ratio, log_ratio


def collect_datasets(env: Env, family: TanhGaussianFamily, behavior: dict, key: jax.Array,
                     num_datasets: int, num_trajectories: int, horizon: int) -> LoggedData:
  """S independent datasets of the behaviour candidate -> LoggedData with leading [S]."""

  def one(k):
    return collect(env, lambda obs, kk: family.sample(behavior, obs, kk),
                   lambda obs, a: family.log_prob(behavior, obs, a), k,
                   num_trajectories, horizon)

  return jax.vmap(one)(jax.random.split(key, num_datasets))


def ratios_and_q(data: LoggedData, family: TanhGaussianFamily, pool: dict, discount: float,
                 key: jax.Array, deterministic: bool, bandwidth: float,
                 fqe_config: FQEConfig) -> dict:
  """For one dataset: log-ratios, Q̂(s_t, a_t), V̂(s_t) of every candidate, each [P, N, T].

  Stochastic candidates use their densities; deterministic ones (τ = 0) the Gaussian
  kernel of width `bandwidth` on the action.
  """

  def one(cand, k):
    if deterministic:
      lr = kernel_log_ratio(data, family.mean_action(cand, data.obs), bandwidth)
    else:
      lr = log_ratio(data, family.log_prob(cand, data.obs, data.action))
    q_sa, v_s = fqe(data, lambda c, obs, kk: family.sample(c, obs, kk), cand, discount, k,
                    fqe_config)
    return {"log_ratio": lr, "q_sa": q_sa, "v_s": v_s}

  num = pool["temperature"].shape[0]
  return jax.vmap(one)(pool, jax.random.split(key, num))


def estimate(data: LoggedData, inputs: dict, discount: float) -> dict:
  """Every estimator for one dataset -> {name: [P]}."""
  return estimate_all(data, inputs["log_ratio"], discount, inputs["q_sa"], inputs["v_s"])


def assess(estimates: dict, true_values: jax.Array, behavior_values: jax.Array,
           ks: tuple[int, ...], threshold: Any) -> dict:
  """Metrics of every estimator on every dataset.

  estimates {name: [S, P]}, true_values [P], behavior_values [S] (the logged data's mean
  discounted return), threshold [] or [S] -> {name: {metric: [S] or [S, len(ks)]}}.
  """
  threshold = jnp.broadcast_to(jnp.asarray(threshold, jnp.float32), behavior_values.shape)

  def one(est, bv, thr):
    return metrics.all_metrics(est, true_values, bv, ks, thr)

  return {name: jax.vmap(one)(est, behavior_values, threshold) for name, est in estimates.items()}


def behavior_values(data: LoggedData, discount: float) -> jax.Array:
  """Mean discounted return of each dataset's trajectories: data [S, N, T] -> [S]."""
  return jax.vmap(lambda d: discounted_returns(d, discount).mean())(data)
