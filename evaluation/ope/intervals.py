"""Confidence intervals of the OPE estimates: bootstrap, Hoeffding, empirical Bernstein, t.

Every estimator of `evaluation.ope.estimators` is a mean over trajectories of a
per-trajectory value X_i (DM: V̂(s_{i,0}); TIS: w_{i,0:T-1} G_i; PDIS: Σ_t γ^t w_{i,0:t} r_{i,t};
DR: Σ_t γ^t [w_{i,0:t}(r − Q̂) + w_{i,0:t-1} V̂]). For the plain estimators the intervals
are (two-sided, level 1 − α, n trajectories, X̄ and s² = the mean and the ddof-1 variance):

  ttest      X̄ ± t_{1−α/2, n−1} s / √n
  hoeffding  X̄ ± R √(log(2/α) / (2n))                      (Hoeffding 1963)
  bernstein  X̄ ± [√(2 s² log(4/α) / n) + 7 R log(4/α) / (3(n − 1))]
                                            (Maurer & Pontil 2009, Thm 4, δ = α/2 a side)
  bootstrap  the α/2 and 1 − α/2 percentiles of the estimate recomputed on B resamples
             of the trajectories (with replacement); for SN forms, resamples where no
             drawn trajectory has weight at some step (0/0) are left out

R is the range of X, which Hoeffding's and Bernstein's bounds presume known; we plug in
the observed max − min (nothing bounds importance-weighted returns a priori), so the two
are approximate, if conservative, intervals.

Self-normalised forms (SNTIS, SNPDIS, SNDR) divide by the mean weight, which is random
too: their bootstrap is a ratio bootstrap (numerator and normaliser recomputed on each
resample), and ttest/hoeffding/bernstein use the linearised values X_i = θ̂ + ψ_i with the
ratio estimator's influence values ψ_i = Σ_t γ^t w̃_{i,t} (y_{i,t} − ȳ_t), where w̃ is the
weight over its per-step mean and ȳ_t = mean_j w̃_{j,t} y_{j,t} (delta method). SCOPE-RL
instead uses w̃_{i,t} y_{i,t}, i.e. treats the normaliser as fixed; on the tiny MDP of the
tests that interval is too wide (coverage 0.97-1.0 for a nominal 0.95).

Where SCOPE-RL 0.2.1 (`scope_rl/utils.py`) differs: its t interval uses the one-sided
quantile t_{1−α, n−1} (a 90% interval at α = 0.05); its Hoeffding half-width is
max(X)·√(n log(2/α)/2) (it grows with n: a misplaced bracket), its Bernstein one uses
max(X), log(2/α) and the ddof-0 variance; its bootstrap percentiles are of the mean of
the pre-normalised values (no ratio bootstrap) with B = 100 by default.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from evaluation.data import DataError, LoggedData, valid_mask
from evaluation.ope.estimators import _times, _weights

INTERVALS = ("bootstrap", "hoeffding", "bernstein", "ttest")


def trajectory_values(data: LoggedData, log_rho: jax.Array, discount: float,
                      q_sa: Optional[jax.Array] = None, v_s: Optional[jax.Array] = None) -> dict:
  """Per-trajectory values X_i whose mean is each estimate, for one candidate.

  log_rho, q_sa, v_s [N, T] -> {name: [N]}; the SN forms use the full sample's normalised
  weights (their mean is the SN estimate).
  """
  mask = valid_mask(data.terminated, data.truncated)
  log_rho = jnp.where(mask, log_rho, 0.0)
  gammas = discount ** jnp.arange(data.horizon)
  returns = jnp.sum(data.reward * mask * gammas, axis=1)
  w, w_prev = _weights(log_rho, False)
  out = {"tis": _times(w[:, -1], returns, True),
         "pdis": jnp.sum(gammas * _times(w, data.reward, mask), axis=1)}
  if q_sa is not None:
    terms = _times(w, data.reward - q_sa, mask) + _times(w_prev, v_s, mask)
    out.update(dm=v_s[:, 0], dr=jnp.sum(gammas * terms, axis=1))
  # Self-normalised: θ̂ + ψ_i, ψ_i = Σ_t γ^t w̃_{i,t} (y_{i,t} − mean_j w̃_{j,t} y_{j,t}) with w̃
  # normalised to mean 1 per step (the ratio estimator's influence values).
  w, w_prev = _weights(log_rho, True)

  def linearised(wt, y, g):
    """θ̂ + ψ_i for Σ_t g_t mean_i(w̃ y), with w̃, y [N, T'] and g [T'] -> [N]."""
    wy = _times(wt, y, True)
    col = jnp.mean(wy, axis=0, keepdims=True)
    return jnp.sum(g * col) + jnp.sum(g * (wy - wt * col), axis=1)

  out["sntis"] = linearised(w[:, -1:], returns[:, None], jnp.ones(1))   # γ^t is in the returns
  out["snpdis"] = linearised(w, data.reward * mask, gammas)
  if q_sa is not None:
    out["sndr"] = (linearised(w, (data.reward - q_sa) * mask, gammas)
                   + linearised(w_prev, v_s * mask, gammas))
  return out


def _self_normalized_resampled(data, log_rho, discount, counts, q_sa, v_s) -> dict:
  """SN estimates recomputed with trajectory multiplicities counts [B, N] -> {name: [B]}.

  Each resample shifts the log-weights by its own per-step maximum over the trajectories
  it drew, so a resample that misses the few trajectories holding most of the weight
  still gets a finite ratio (a shared shift would underflow it to 0/0). Resamples run in
  chunks of 16 (`lax.map`): memory 16·N·T per (dataset, candidate) pair being vmapped.
  """
  mask = valid_mask(data.terminated, data.truncated)
  gammas = discount ** jnp.arange(data.horizon)
  log_w = jnp.cumsum(jnp.where(mask, log_rho, 0.0), axis=1)
  log_w_prev = jnp.pad(log_w[:, :-1], ((0, 0), (1, 0)))
  returns = jnp.sum(data.reward * mask * gammas, axis=1)

  def ratio(c, lw, y):
    """Σ_i c_i w_i y_i / Σ_i c_i w_i per column, lw, y [N, T'] -> [T']."""
    drawn = (c > 0)[:, None]
    m = jnp.max(jnp.where(drawn, lw, -jnp.inf), axis=0, keepdims=True)
    e = jnp.where(drawn, jnp.exp(lw - jnp.where(jnp.isfinite(m), m, 0.0)), 0.0) * c[:, None]
    total = jnp.sum(e, axis=0)
    # 0/0 (no drawn trajectory has weight at a step) is an undefined resample: NaN,
    # left out of the percentiles.
    return jnp.where(total > 0, jnp.sum(_times(e, y, True), axis=0) / jnp.where(total > 0, total, 1.0),
                     jnp.nan)

  def one(c):
    out = {"sntis": ratio(c, log_w[:, -1:], returns[:, None])[0],
           "snpdis": jnp.sum(gammas * ratio(c, log_w, data.reward * mask))}
    if q_sa is not None:
      out["sndr"] = jnp.sum(gammas * (ratio(c, log_w, (data.reward - q_sa) * mask)
                                      + ratio(c, log_w_prev, v_s * mask)))
    return out

  return jax.lax.map(one, counts, batch_size=16)


def _bounds(x: jax.Array, alpha: float) -> dict:
  """ttest, hoeffding, bernstein intervals of the mean of x [N] -> {name: [2]}."""
  n = x.shape[0]
  mean, sd = jnp.mean(x), jnp.std(x, ddof=1)
  rng = jnp.max(x) - jnp.min(x)
  t = float(stats.t.ppf(1 - alpha / 2, n - 1))
  half = {"ttest": t * sd / np.sqrt(n),
          "hoeffding": rng * np.sqrt(np.log(2 / alpha) / (2 * n)),
          "bernstein": (jnp.sqrt(2 * sd**2 * np.log(4 / alpha) / n)
                        + 7 * rng * np.log(4 / alpha) / (3 * (n - 1)))}
  return {k: jnp.stack([mean - h, mean + h]) for k, h in half.items()}


def confidence_intervals(data: LoggedData, log_rho: jax.Array, discount: float, key: jax.Array,
                         q_sa: Optional[jax.Array] = None, v_s: Optional[jax.Array] = None,
                         alpha: float = 0.05, num_bootstrap: int = 1000) -> dict:
  """Every interval of every estimator for P candidates (vmapped).

  log_rho, q_sa, v_s [P, N, T] (DM and DR left out when q_sa is None); the same bootstrap
  resamples serve every estimator and candidate. Returns {estimator: {interval:
  [P, 2] (lower, upper)}}. Raises DataError for N < 2 or α outside (0, 1).
  """
  n = data.reward.shape[0]
  if n < 2:
    raise DataError(f"confidence intervals need at least 2 trajectories, got {n}")
  if not 0 < alpha < 1:
    raise DataError(f"alpha must be in (0, 1), got {alpha}")
  if num_bootstrap < 2:
    raise DataError(f"num_bootstrap must be >= 2, got {num_bootstrap}")
  counts = jax.vmap(lambda k: jnp.bincount(jax.random.randint(k, (n,), 0, n), length=n))(
      jax.random.split(key, num_bootstrap)).astype(jnp.float32)       # [B, N] multiplicities
  q_lo, q_hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

  def one(lr, q, v):
    values = trajectory_values(data, lr, discount, q, v)
    boot = {k: jnp.sum(jnp.where(counts > 0, counts * x, 0.0), axis=1) / n
            for k, x in values.items() if not k.startswith("sn")}
    boot.update(_self_normalized_resampled(data, lr, discount, counts, q, v))
    out = {}
    for name, x in values.items():
      out[name] = _bounds(x, alpha)
      out[name]["bootstrap"] = jnp.stack([jnp.nanpercentile(boot[name], q_lo),
                                          jnp.nanpercentile(boot[name], q_hi)])
    return out

  if q_sa is None:
    return jax.vmap(lambda lr: one(lr, None, None))(log_rho)
  return jax.vmap(one)(log_rho, q_sa, v_s)
