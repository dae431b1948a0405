"""OPE assessment metrics: accuracy of the estimates and the policies they would select.

Each is a pure function of `(estimated_values [P], true_values [P], ...)`, jittable with
a static `k`. Top-k sets follow SCOPE-RL's `OffPolicySelection`: the k candidates with
the highest *estimated* values, whose *true* values are then scored. Ties in the
estimates are broken by candidate index, lower first (a stable descending sort), so
results never depend on the platform's sort.

SharpeRatio@k (Kiyohara et al., "Towards Assessing and Benchmarking Risk-Return
Tradeoff of Off-Policy Evaluation"), as SCOPE-RL computes it:

    SharpeRatio@k = max(best@k − V(π_b), 0) / std@k

with best@k the maximum and std@k the sample standard deviation (ddof = 1) of the
top-k's true values. std@1 is undefined, so k = 1 returns NaN; std@k = 0 with a positive
numerator returns +inf (both as SCOPE-RL).

V(π_b) is the behaviour policy's value by on-policy Monte-Carlo (as the paper defines
it; `experiments.ope_sweep` computes it like the candidates' true values). SCOPE-RL
instead uses the logged data's mean discounted return. The Type I/II threshold defaults
to V(π_b) in `experiments.ope_sweep`; SCOPE-RL's default threshold is 0 (its
`relative_safety_criteria` c gives c × its logged V̂(π_b)).

Undefined cases: std@1 and SharpeRatio@1 are NaN; relative_error leaves out candidates
with V = 0; rank_correlation is 0 for constant estimates; relative_*@k are NaN when
V(π_b) = 0; every metric is NaN when an estimate is not finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def mse(estimated_values: jax.Array, true_values: jax.Array) -> jax.Array:
  """Mean squared error over candidates."""
  return jnp.mean((estimated_values - true_values) ** 2)


def relative_error(estimated_values: jax.Array, true_values: jax.Array) -> jax.Array:
  """Mean of |V̂ − V| / |V| over the candidates with V ≠ 0 (NaN if every V is 0).

  |V̂ − V| / |V| is undefined at V = 0; such candidates are left out of the mean (the
  true values are the same for every estimator, so the comparison stays fair).
  """
  nonzero = true_values != 0
  err = jnp.abs(estimated_values - true_values) / jnp.where(nonzero, jnp.abs(true_values), 1.0)
  count = jnp.sum(nonzero)
  return jnp.where(count > 0, jnp.sum(jnp.where(nonzero, err, 0.0)) / jnp.maximum(count, 1), jnp.nan)


def _ranks(x: jax.Array) -> jax.Array:
  """Ranks 1..P with ties given their average rank."""
  less = jnp.sum(x[None, :] < x[:, None], axis=1)
  equal = jnp.sum(x[None, :] == x[:, None], axis=1)
  return less + (equal + 1) / 2.0


def rank_correlation(estimated_values: jax.Array, true_values: jax.Array) -> jax.Array:
  """Spearman's ρ: Pearson correlation of the (tie-averaged) ranks.

  Constant estimates (or constant true values) carry no ranking: ρ is then 0, not the
  0/0 of the formula, so a constant estimator scores as uninformative.
  """
  a, b = _ranks(estimated_values), _ranks(true_values)
  a, b = a - a.mean(), b - b.mean()
  denom = jnp.sum(a**2) * jnp.sum(b**2)
  return jnp.where(denom > 0, jnp.sum(a * b) / jnp.sqrt(jnp.where(denom > 0, denom, 1.0)), 0.0)


def top_k(estimated_values: jax.Array, k: int) -> jax.Array:
  """Indices [k] of the k highest estimates (ties: lower index first)."""
  return jnp.argsort(-estimated_values, stable=True)[:k]


def _topk_true(estimated_values, true_values, k):
  return true_values[top_k(estimated_values, k)]


def best_at_k(estimated_values, true_values, k: int) -> jax.Array:
  """Highest true value among the estimated top-k."""
  return jnp.max(_topk_true(estimated_values, true_values, k))


def worst_at_k(estimated_values, true_values, k: int) -> jax.Array:
  """Lowest true value among the estimated top-k."""
  return jnp.min(_topk_true(estimated_values, true_values, k))


def mean_at_k(estimated_values, true_values, k: int) -> jax.Array:
  """Mean true value of the estimated top-k."""
  return jnp.mean(_topk_true(estimated_values, true_values, k))


def std_at_k(estimated_values, true_values, k: int) -> jax.Array:
  """Sample standard deviation (ddof=1) of the estimated top-k's true values; NaN at k=1."""
  return jnp.std(_topk_true(estimated_values, true_values, k), ddof=1)


def regret_at_k(estimated_values, true_values, k: int) -> jax.Array:
  """Σ of the k best true values − Σ of the true values of the estimated top-k
  (SCOPE-RL's Regret@k; at k = 1 the usual regret of the selected policy)."""
  best = jnp.sum(jnp.sort(true_values)[::-1][:k])
  return best - jnp.sum(_topk_true(estimated_values, true_values, k))


def kth_at_k(estimated_values, true_values, k: int) -> jax.Array:
  """True value of the k-th candidate of the estimated ranking (SCOPE-RL's k-th@k)."""
  return _topk_true(estimated_values, true_values, k)[-1]


def safety_violation_rate_at_k(estimated_values, true_values, threshold, k: int) -> jax.Array:
  """Share of the estimated top-k whose true value is below `threshold`."""
  return jnp.mean(_topk_true(estimated_values, true_values, k) < threshold)


def sharpe_ratio_at_k(estimated_values, true_values, behavior_value, k: int,
                      clip: bool = False) -> jax.Array:
  """max(best@k − V(π_b), 0) / std@k (see the module docstring).

  clip (SCOPE-RL's `clip_sharpe_ratio`, k ≥ 2 only): +inf -> 100, then clip to [0, 100].
  """
  excess = jnp.maximum(best_at_k(estimated_values, true_values, k) - behavior_value, 0.0)
  sr = excess / std_at_k(estimated_values, true_values, k)
  if clip and k >= 2:
    sr = jnp.clip(jnp.nan_to_num(sr, nan=0.0, posinf=100.0), 0.0, 100.0)
  return sr


def type_i_error_rate(estimated_values, true_values, threshold) -> jax.Array:
  """Share of truly safe candidates (V ≥ threshold) estimated unsafe (0 if none is safe)."""
  safe = true_values >= threshold
  wrong = safe & (estimated_values < threshold)
  return jnp.where(safe.any(), wrong.sum() / jnp.maximum(safe.sum(), 1), 0.0)


def type_ii_error_rate(estimated_values, true_values, threshold) -> jax.Array:
  """Share of truly unsafe candidates (V < threshold) estimated safe (0 if none is unsafe)."""
  unsafe = true_values < threshold
  wrong = unsafe & (estimated_values >= threshold)
  return jnp.where(unsafe.any(), wrong.sum() / jnp.maximum(unsafe.sum(), 1), 0.0)


def all_metrics(estimated_values, true_values, behavior_value, ks, threshold,
                clip_sharpe_ratio: bool = False) -> dict:
  """Every metric: scalars, plus per-k arrays [len(ks)] for the @k ones.

  `relative_*@k` are the @k values divided by V(π_b) (SCOPE-RL's relative policy value;
  NaN if V(π_b) = 0). If any estimate is not finite (NaN or ±inf: a diverged estimator),
  every metric is NaN: a ranking or an error computed from the other candidates would
  flatter it.
  """
  out = {"mse": mse(estimated_values, true_values),
         "relative_error": relative_error(estimated_values, true_values),
         "rank_correlation": rank_correlation(estimated_values, true_values),
         "type_i_error_rate": type_i_error_rate(estimated_values, true_values, threshold),
         "type_ii_error_rate": type_ii_error_rate(estimated_values, true_values, threshold)}
  at_k = {"regret": regret_at_k, "kth": kth_at_k, "best": best_at_k, "worst": worst_at_k,
          "mean": mean_at_k, "std": std_at_k}
  for name, fn in at_k.items():
    out[f"{name}@k"] = jnp.stack([fn(estimated_values, true_values, k) for k in ks])
  bv = jnp.asarray(behavior_value, jnp.float32)
  for name in ("kth", "best", "worst", "mean"):
    out[f"relative_{name}@k"] = out[f"{name}@k"] / jnp.where(bv != 0, bv, jnp.nan)
  out["safety_violation_rate@k"] = jnp.stack(
      [safety_violation_rate_at_k(estimated_values, true_values, threshold, k) for k in ks])
  out["sharpe_ratio@k"] = jnp.stack(
      [sharpe_ratio_at_k(estimated_values, true_values, behavior_value, k, clip_sharpe_ratio)
       for k in ks])
  diverged = ~jnp.isfinite(estimated_values).all()
  return jax.tree.map(lambda x: jnp.where(diverged, jnp.nan, x), out)
