"""An OPE sweep: every estimator on S logged datasets for P candidate policies, vmapped.

    data = collect_datasets(env, family, behavior, key, S, N, T)       # LoggedData [S, N, T]
    inputs = vmap(ratios_and_q)(data, ..., keys)                        # ratios, Q̂, V̂ [S, P, N, T]
    estimates = vmap(estimate)(data, inputs)                            # {name: [S, P]}
    scores = assess(estimates, true_values, behavior_value, ks, threshold)
    summary = summarize(estimates, scores)                              # plain means over S
    cis = vmap(intervals)(data, inputs, ..., keys)                      # {name: {ci: [S, P, 2]}}
    by_lower = assess(lower_bounds(cis), ...)                           # selection by lower bound
    cdfs = vmap(cumulative)(data, inputs, thresholds)                   # {name: [S, P, K]}
    risk = risk_assessment(cdfs, thresholds, true_returns, ...)         # CVaR, quartiles, top-k

All of it is pure and vmapped over datasets (S) and candidates (P); `experiments.ope_sweep`
shards the leading dataset axis over devices.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from envs import Env
from evaluation import metrics
from evaluation.candidates import TanhGaussianFamily
from evaluation.data import LoggedData, collect, discounted_returns
from evaluation.ope import (FQEConfig, MWLConfig, confidence_intervals, cumulative_distributions,
                            estimate_all, estimate_marginal, fqe, kernel_log_ratio, log_ratio,
                            mwl, risk_functionals, sample_kernel)


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
                 fqe_config: FQEConfig, kernel: str = "gaussian",
                 kernel_truncate: bool = True, mwl_config: Optional[MWLConfig] = None) -> dict:
  """For one dataset: log-ratios, Q̂(s_t, a_t), V̂(s_t) of every candidate, each [P, N, T],
  and with `mwl_config` the MWL occupancy ratios w(s_t, a_t, t) [P, N, T] as well.

  Stochastic candidates use their densities; deterministic ones (τ = 0) the action
  kernel (`kernel`, width `bandwidth`, truncated to the action box unless
  kernel_truncate=False). MWL then learns the occupancy ratio of the smoothed policy
  a ~ K_h(· | π_e(s)) (`sample_kernel`; with kernel_truncate=False, the kernel over ℝ
  clipped to the box, which is not quite the policy the untruncated kernel IS weigh): a
  deterministic policy on continuous actions has no occupancy density ratio, and its MWL
  weights collapse towards 0 (`benchmarks/mwl_ablation.py`). So SAM-IS, like the kernel
  IS estimators, estimates the smoothed policy's value, and it is still far off on
  inverted_pendulum (BENCHMARKS.md, issue 16). FQE (DM, and SAM-DR's Q̂, V̂) stays π_e's
  own: SAM-DR is unbiased when Q̂ is right, but a right w alone leaves a bias of
  Σ_t γ^t E[V̂(s_t) − E_{a~π_h} Q̂(s_t, a)].
  """

  def one(cand, k):
    if deterministic:
      lr = kernel_log_ratio(data, family.mean_action(cand, data.obs), bandwidth, kernel,
                            kernel_truncate)
    else:
      lr = log_ratio(data, family.log_prob(cand, data.obs, data.action))
    q_sa, v_s = fqe(data, lambda c, obs, kk: family.sample(c, obs, kk), cand, discount, k,
                    fqe_config)
    out = {"log_ratio": lr, "q_sa": q_sa, "v_s": v_s}
    if mwl_config is not None:
      if deterministic:
        target = lambda c, obs, kk: sample_kernel(kk, family.mean_action(c, obs), bandwidth,
                                                  kernel, truncate=kernel_truncate)
      else:
        target = family.sample
      out["marginal_weight"] = mwl(data, target, cand, discount, jax.random.fold_in(k, 1),
                                   mwl_config)
    return out

  num = pool["temperature"].shape[0]
  return jax.vmap(one)(pool, jax.random.split(key, num))


def estimate(data: LoggedData, inputs: dict, discount: float) -> dict:
  """Every estimator for one dataset -> {name: [P]} (SAM-IS and SAM-DR where the inputs
  hold MWL weights)."""
  out = estimate_all(data, inputs["log_ratio"], discount, inputs["q_sa"], inputs["v_s"])
  if "marginal_weight" in inputs:
    out.update(estimate_marginal(data, inputs["marginal_weight"], discount, inputs["q_sa"],
                                 inputs["v_s"]))
  return out


def intervals(data: LoggedData, inputs: dict, discount: float, key: jax.Array,
              alpha: float = 0.05, num_bootstrap: int = 1000) -> dict:
  """Confidence intervals for one dataset -> {estimator: {interval: [P, 2]}}."""
  return confidence_intervals(data, inputs["log_ratio"], discount, key, inputs["q_sa"],
                              inputs["v_s"], alpha, num_bootstrap)


def lower_bounds(intervals_: dict) -> dict:
  """Lower ends as estimates, for selection by lower bound: {"EST/INTERVAL-lower": [S, P]}."""
  return {f"{name}/{ci}-lower": v[..., 0] for name, per in intervals_.items() for ci, v in per.items()}


def interval_summary(intervals_: dict, true_values) -> dict:
  """Coverage of the true values and mean width, over datasets and candidates.

  intervals_ {estimator: {interval: [S, P, 2]}}, true_values [P] -> {estimator: {interval:
  {"coverage": share of (dataset, candidate) pairs covered, "coverage_per_candidate": [P],
  "mean_width": float}}}.
  """
  truth = np.asarray(true_values)
  out = {}
  for name, per in intervals_.items():
    out[name] = {}
    for ci, v in per.items():
      v = np.asarray(v, np.float64)
      covered = (v[..., 0] <= truth) & (truth <= v[..., 1])
      out[name][ci] = {"coverage": float(covered.mean()),
                       "coverage_per_candidate": covered.mean(0).tolist(),
                       "mean_width": float(np.mean(v[..., 1] - v[..., 0]))}
  return out


def assess(estimates: dict, true_values: jax.Array, behavior_value: Any,
           ks: tuple[int, ...], threshold: Any, clip_sharpe_ratio: bool = False) -> dict:
  """Metrics of every estimator on every dataset.

  estimates {name: [S, P]}, true_values [P], behavior_value V(π_b) [] or [S] (SharpeRatio@k's
  baseline and the relative values' denominator), threshold [] or [S] (Type I/II, safety
  violations) -> {name: {metric: [S] or [S, len(ks)]}}.
  """
  num = next(iter(estimates.values())).shape[0]
  behavior_value = jnp.broadcast_to(jnp.asarray(behavior_value, jnp.float32), (num,))
  threshold = jnp.broadcast_to(jnp.asarray(threshold, jnp.float32), (num,))

  def one(est, bv, thr):
    return metrics.all_metrics(est, true_values, bv, ks, thr, clip_sharpe_ratio)

  return {name: jax.vmap(one)(est, behavior_value, threshold) for name, est in estimates.items()}


RISK_FUNCTIONALS = ("mean", "cvar", "lower_quartile", "interquartile_range", "variance")


def risk_thresholds(returns: np.ndarray, num: int) -> np.ndarray:
  """`num` evenly spaced CDF thresholds [num] from the lowest to the highest of `returns`
  (any shape: the candidates' Monte-Carlo and the logged returns together)."""
  r = np.asarray(returns, np.float64)
  r = r[np.isfinite(r)]
  return np.linspace(r.min(), r.max(), num).astype(np.float32)


def cumulative(data: LoggedData, inputs: dict, discount: float, thresholds: jax.Array) -> dict:
  """Every CD estimator's CDF for one dataset -> {name: [P, K]} (V̂(s_0) from FQE)."""
  return jax.vmap(lambda lr, v: cumulative_distributions(data, lr, discount, v[:, 0],
                                                         thresholds))(
      inputs["log_ratio"], inputs["v_s"])


def empirical_cdf(returns: jax.Array, thresholds: jax.Array) -> jax.Array:
  """Monte-Carlo CDF [..., K] of returns [..., E] at thresholds [K]."""
  return jnp.mean(returns[..., :, None] <= thresholds, axis=-2)


def risk_assessment(cdfs: dict, thresholds: jax.Array, true_returns: jax.Array,
                    behavior_returns: jax.Array, ks: tuple[int, ...], alpha: float) -> dict:
  """Risk functionals of estimated and Monte-Carlo CDFs, their errors, and the metrics of
  selecting candidates by each estimated functional.

  cdfs {estimator: [S, P, K]}, thresholds [K], true_returns [P, E], behavior_returns [E]
  -> {"true": {functional: [P]} (of the Monte-Carlo CDF on the threshold grid: each return
  counts at the next threshold up, so the "true" mean exceeds the plain Monte-Carlo mean
  by less than one grid step; estimates are read off the same grid), "estimated": {estimator: {functional: [S, P]}},
  "abs_error": {estimator: {functional: [S]}} (mean over candidates of |estimate − truth|),
  "selection": {"ESTIMATOR/FUNCTIONAL": {metric: [S, ...]}} (top-k by the estimated
  functional, scored against the true one; SharpeRatio@k's baseline and the Type I/II
  threshold are π_b's value of that functional)}.
  """
  fns = lambda cdf: risk_functionals(cdf, thresholds, alpha)
  true_cdf = empirical_cdf(true_returns, thresholds)
  truth = jax.vmap(fns)(true_cdf)
  behavior = fns(empirical_cdf(behavior_returns, thresholds))
  estimated = {n: jax.vmap(jax.vmap(fns))(c) for n, c in cdfs.items()}
  errors = {n: {f: jnp.mean(jnp.abs(v[f] - truth[f]), axis=-1) for f in RISK_FUNCTIONALS}
            for n, v in estimated.items()}
  selection = {}
  for f in ("cvar", "lower_quartile"):
    chosen = {f"{n}/{f}": v[f] for n, v in estimated.items()}
    selection.update(assess(chosen, truth[f], behavior[f], ks, behavior[f]))
  return {"true": truth, "true_cdf": true_cdf, "estimated": estimated, "abs_error": errors,
          "selection": selection}


def summarize(estimates: dict, scores: dict) -> dict:
  """Plain means over datasets of every metric, and the count of diverged datasets.

  estimates {name: [S, P]}, scores as `assess` returns -> {name: {"metrics_mean": {metric:
  float or [len(ks)]}, "nonfinite_datasets": int}}. No NaN is skipped: an estimator that
  diverged on one dataset (a NaN estimate makes all its metrics NaN there) gets NaN means,
  and `nonfinite_datasets` counts the datasets where any of its estimates is not finite.
  NaN also stands where a metric is undefined (std@1, SharpeRatio@1).
  """
  out = {}
  for name, est in estimates.items():
    est = np.asarray(est)
    out[name] = {"metrics_mean": {m: np.mean(np.asarray(v, np.float64), axis=0)
                                  for m, v in scores[name].items()},
                 "nonfinite_datasets": int((~np.isfinite(est)).any(axis=1).sum())}
  return out


def behavior_values(data: LoggedData, discount: float) -> jax.Array:
  """Mean discounted return of each dataset's trajectories: data [S, N, T] -> [S]."""
  return jax.vmap(lambda d: discounted_returns(d, discount).mean())(data)
