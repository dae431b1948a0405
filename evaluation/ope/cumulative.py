"""Cumulative-distribution OPE: the CDF of the trajectory return G = Σ_{t<T} γ^t r_t under
π_e, F(m) = P_{π_e}(G ≤ m), on a grid of thresholds m_0 < … < m_K, and risk functionals of it.

Estimators (Chandak et al. 2021, "Universal Off-Policy Evaluation"; Huang et al. 2021,
"Off-Policy Risk Assessment in Contextual Bandits"), in SCOPE-RL's trajectory-wise forms
(`scope_rl/ope/continuous/cumulative_distribution_estimators.py`), with trajectory
weights w_i = Π_t ρ_t and a return model Ĝ(m; s_0) = 1{V̂(s_0) ≤ m} (SCOPE-RL's: the
FQE value of the initial state taken as the return, a point mass):

  CD-DM     F(m) = mean_i 1{V̂(s_0^i) ≤ m}
  CD-TIS    F(m) = mean_i w_i 1{G_i ≤ m}
  CD-SNTIS  F(m) = Σ_i w_i 1{G_i ≤ m} / Σ_i w_i
  CD-TDR    F(m) = mean_i 1{V̂_i ≤ m} + mean_i w_i (1{G_i ≤ m} − 1{V̂_i ≤ m})
  CD-SNTDR  the same with w_i / mean_i w_i

then made a CDF: running maximum over m, clipped to [0, 1] (SCOPE-RL does both for its
TDR forms and clips the IS forms, which are monotone already; its DM is a histogram). Where
SCOPE-RL bins returns into histogram cells (F at m_j counts values below m_j), we
evaluate F exactly at each threshold (values equal to m_j count), and we do not clip the
returns into the grid: a return below m_0 counts at m_0, one above m_K nowhere (put m_K
at or above the largest return for F(m_K) to reach the estimate's total mass).

Functionals of an estimated F (`risk_functionals`) treat it as the distribution with
mass F(m_0) at m_0, F(m_j) − F(m_{j−1}) at m_j and the rest, 1 − F(m_K), at m_K (so a
TIS estimate whose mass falls short of 1 still gives a distribution): mean, variance,
CVaR_α = (1/α) ∫_0^α F^{-1}(u) du (the mean of the worst α fraction), the quartiles
F^{-1}(u) = min{m_j : F(m_j) ≥ u} and the interquartile range.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evaluation.data import LoggedData
from evaluation.ope.estimators import _normalized, _returns

CD_ESTIMATORS = ("cd_dm", "cd_tis", "cd_sntis", "cd_tdr", "cd_sntdr")


def _below(values: jax.Array, thresholds: jax.Array) -> jax.Array:
  """1{values_i ≤ m_j} [N, K] for values [N], thresholds [K]."""
  return (values[:, None] <= thresholds[None, :]).astype(jnp.float32)


def _as_cdf(f: jax.Array) -> jax.Array:
  """Running maximum over thresholds, clipped to [0, 1]: [..., K] -> [..., K]."""
  return jnp.clip(jax.lax.cummax(f, axis=f.ndim - 1), 0.0, 1.0)


def cumulative_distributions(data: LoggedData, log_rho: jax.Array, discount: float,
                             v0: jax.Array, thresholds: jax.Array) -> dict[str, jax.Array]:
  """Every CD estimator's F [K] at `thresholds` [K] (increasing), from log-ratios
  log_rho [N, T] (0 on padding), V̂(s_0) v0 [N] and the logged data [N, T, ...]."""
  g = _returns(data, discount)
  log_w = jnp.sum(log_rho, axis=1)
  w = jnp.exp(log_w)
  w_sn = _normalized(log_w[:, None])[:, 0]
  obs, model = _below(g, thresholds), _below(v0, thresholds)
  dm = model.mean(0)
  weighted = lambda ww, x: jnp.mean(jnp.where(x != 0, ww[:, None] * x, 0.0), axis=0)
  return {"cd_dm": _as_cdf(dm),
          "cd_tis": _as_cdf(weighted(w, obs)),
          "cd_sntis": _as_cdf(weighted(w_sn, obs)),
          "cd_tdr": _as_cdf(dm + weighted(w, obs - model)),
          "cd_sntdr": _as_cdf(dm + weighted(w_sn, obs - model))}


def _masses(cdf: jax.Array) -> jax.Array:
  """Point masses [K] of the distribution a CDF [K] stands for (the rest at the top)."""
  f = jnp.concatenate([cdf[:-1], jnp.ones_like(cdf[-1:])])
  return jnp.diff(f, prepend=0.0)


def quantile(cdf: jax.Array, thresholds: jax.Array, u: float) -> jax.Array:
  """F^{-1}(u) = min{m_j : F(m_j) ≥ u} (m_K when none) -> []."""
  f = jnp.concatenate([cdf[:-1], jnp.ones_like(cdf[-1:])])
  q = thresholds[jnp.argmax(f >= u)]
  return jnp.where(jnp.isnan(cdf).any(), jnp.nan, q)   # an undefined estimate stays undefined


def cvar(cdf: jax.Array, thresholds: jax.Array, alpha: float) -> jax.Array:
  """CVaR_α = (1/α) ∫_0^α F^{-1}(u) du: the mean of the lowest α of the mass -> []."""
  p = _masses(cdf)
  before = jnp.cumsum(p) - p                       # mass below each point
  taken = jnp.clip(alpha - before, 0.0, p)        # the part of each point within the tail
  return jnp.sum(taken * thresholds) / alpha


def risk_functionals(cdf: jax.Array, thresholds: jax.Array,
                     alpha: float = 0.1) -> dict[str, jax.Array]:
  """mean, variance, CVaR_α, lower quartile, median, upper quartile and interquartile
  range of the distribution that the CDF [K] on thresholds [K] stands for."""
  p = _masses(cdf)
  mean = jnp.sum(p * thresholds)
  q1, q2, q3 = (quantile(cdf, thresholds, u) for u in (0.25, 0.5, 0.75))
  return {"mean": mean, "variance": jnp.sum(p * (thresholds - mean) ** 2),
          "cvar": cvar(cdf, thresholds, alpha), "lower_quartile": q1, "median": q2,
          "upper_quartile": q3, "interquartile_range": q3 - q1}
