"""OPE estimators of the finite-horizon discounted value V(π_e) = E[Σ_{t<T} γ^t r_t].

Conventions follow SCOPE-RL (`scope_rl/ope/continuous/basic_estimators.py`), per
trajectory i and step t, with per-step ratios ρ_t = π_e(a_t|s_t) / π_b(a_t|s_t) and
cumulative weights w_{0:t} = Π_{t'≤t} ρ_{t'} (w_{0:-1} = 1):

  DM     mean_i V̂(s_0)
  TIS    mean_i Σ_t γ^t w_{0:T-1} r_t
  PDIS   mean_i Σ_t γ^t w_{0:t} r_t
  DR     mean_i Σ_t γ^t [w_{0:t} (r_t − Q̂(s_t, a_t)) + w_{0:t-1} V̂(s_t)]
  SN*    the same with w replaced by w / mean_i w at each t (self-normalised)

where Q̂, V̂(s) = E_{a~π_e} Q̂(s, a) come from FQE (`evaluation.ope.fqe`). Padding steps
after an episode ends have ρ = 1 and contribute nothing. Weights are formed from
summed log-ratios; the self-normalised forms normalise in log space (log-sum-exp), so
they stay finite where the plain weights overflow float32.

Deterministic target policies have no density at the logged action; their ratio uses a
kernel on the action, ρ_t = K_h(a_t | π_e(s_t)) / π_b(a_t|s_t), with K_h a product over
action dimensions of a 1-D kernel K((a − μ)/h)/h (`KERNELS`: gaussian, epanechnikov,
triangular, cosine, uniform). Logged actions lie in the box [-1, 1]^a, so K_h is
truncated to that box: each dimension is divided by its kernel mass inside [-1, 1],
∫_{-1}^{1} K((x − μ)/h)/h dx. Then K_h(·|μ) is a density on the box and E_{π_b}[ρ_t | s_t]
= 1 for every target action μ, as the estimators need. Without the truncation (SCOPE-RL's
kernel, normalised over ℝ), the expected per-step weight is the mass inside the box only
(0.95, 0.75, 0.55 for μ = 0.5, 0.8, 0.96 at h = 0.3), and over 50 steps the weights
shrink by 0.086, 5e-7, 1e-13, pulling TIS, PDIS and DR towards 0. We truncate rather
than apply the kernel in pre-tanh space because truncation needs nothing of the
behaviour policy's parametrisation (any π_b with a density on the box works) and
keeps h in action units, as SCOPE-RL's bandwidth is.

Overflow: where a weight is inf, a step that contributes nothing (padding, or a zero
reward) is masked with `where` before the product, so inf × 0 never makes a NaN; an
estimate that truly diverges comes out ±inf (or NaN for inf − inf in DR) and the sweep
counts it as non-finite.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from evaluation.data import DataError, LoggedData, check, valid_mask


def log_ratio(data: LoggedData, target_log_prob: jax.Array) -> jax.Array:
  """log ρ_t [N, T] from log π_e(a_t|s_t) [N, T]; 0 on padding."""
  mask = valid_mask(data.terminated, data.truncated)
  return jnp.where(mask, target_log_prob - data.behavior_log_prob, 0.0)


def _cdf_poly(u, f):
  """CDF of a kernel supported on [-1, 1] with antiderivative f (f(-1) = 0, f(1) = 1)."""
  return jnp.where(u <= -1, 0.0, jnp.where(u >= 1, 1.0, f(jnp.clip(u, -1.0, 1.0))))


def _gauss_log_mass(lo, hi):
  # log(Φ(hi) − Φ(lo)), stable for hi ≥ lo (here hi ≥ 0 ≥ lo whenever μ is in the box).
  lh, ll = jax.scipy.special.log_ndtr(hi), jax.scipy.special.log_ndtr(lo)
  return lh + jnp.log1p(-jnp.exp(ll - lh))


def _poly_log_mass(f):
  return lambda lo, hi: jnp.log(_cdf_poly(hi, f) - _cdf_poly(lo, f))


def _log_support(u, k):
  return jnp.where(jnp.abs(u) <= 1, jnp.log(jnp.maximum(k, 1e-30)), -jnp.inf)


# Antiderivatives on [-1, 1] of the compactly supported kernels (their CDFs there).
_ANTIDERIVATIVES = {
    "epanechnikov": lambda u: 0.5 + 0.75 * u - 0.25 * u**3,
    "triangular": lambda u: jnp.where(u < 0, 0.5 * (1 + u)**2, 1 - 0.5 * (1 - u)**2),
    "cosine": lambda u: 0.5 * (1 + jnp.sin(jnp.pi * u / 2)),
    "uniform": lambda u: 0.5 * (1 + u),
}
_DENSITIES = {
    "epanechnikov": lambda u: 0.75 * (1 - u**2),
    "triangular": lambda u: 1 - jnp.abs(u),
    "cosine": lambda u: jnp.pi / 4 * jnp.cos(jnp.pi * u / 2),
    "uniform": lambda u: jnp.full_like(u, 0.5),
}

# name: (log K(u), log of the mass of K on [lo, hi]) for the standardised 1-D kernel.
KERNELS = {
    "gaussian": (lambda u: -0.5 * u**2 - 0.5 * jnp.log(2 * jnp.pi), _gauss_log_mass),
    **{name: (lambda u, k=k: _log_support(u, k(u)), _poly_log_mass(_ANTIDERIVATIVES[name]))
       for name, k in _DENSITIES.items()},
}


def _check_kernel(kernel: str, bandwidth: float) -> None:
  if kernel not in KERNELS:
    raise ValueError(f"unknown kernel {kernel!r}; choose from {sorted(KERNELS)}")
  if not bandwidth > 0:
    raise ValueError(f"bandwidth must be > 0, got {bandwidth}")


def log_kernel(action: jax.Array, target_action: jax.Array, bandwidth: float,
               kernel: str = "gaussian", low: float = -1.0, high: float = 1.0,
               truncate: bool = True) -> jax.Array:
  """log K_h(a | μ) [...]: the product kernel truncated to the box [low, high]^a.

  action, target_action [..., a]; each dimension is K((a − μ)/h) / h divided by its
  mass inside [low, high], so the result is a density over the box. truncate=False
  leaves out that division (the kernel normalised over ℝ, as SCOPE-RL's), for ablations.
  """
  _check_kernel(kernel, bandwidth)
  log_k, log_mass = KERNELS[kernel]
  mu = jnp.clip(target_action, low, high)
  u = (action - mu) / bandwidth
  per_dim = log_k(u) - jnp.log(bandwidth)
  if truncate:
    per_dim = per_dim - log_mass((low - mu) / bandwidth, (high - mu) / bandwidth)
  return jnp.sum(per_dim, axis=-1)


def sample_kernel(key: jax.Array, target_action: jax.Array, bandwidth: float,
                  kernel: str = "gaussian", low: float = -1.0, high: float = 1.0,
                  truncate: bool = True) -> jax.Array:
  """a ~ K_h(· | μ) [..., a] for target actions μ [..., a]: with truncate=True the smoothed
  policy whose density `log_kernel` gives, so that the kernel estimators and MWL weigh the
  same target. truncate=False draws over ℝ and clips to the box (as an env clips): that
  policy has point masses at the bounds, which `log_kernel(truncate=False)` has not.

  Each dimension by inverse CDF: u uniform between the kernel's CDF at the box's ends
  (over ℝ for truncate=False), a = μ + h F⁻¹(u), with F⁻¹ the normal quantile or 40
  bisections on [-1, 1].
  """
  _check_kernel(kernel, bandwidth)
  mu = jnp.clip(jnp.asarray(target_action, jnp.float32), low, high)
  if kernel == "gaussian":
    cdf, inverse = jax.scipy.special.ndtr, jax.scipy.special.ndtri
  else:
    f = _ANTIDERIVATIVES[kernel]
    cdf = lambda u: _cdf_poly(u, f)

    def inverse(p):
      def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = f(mid) < p
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)
      lo, hi = jax.lax.fori_loop(0, 40, halve, (-jnp.ones_like(p), jnp.ones_like(p)))
      return 0.5 * (lo + hi)
  if truncate:
    p_lo, p_hi = cdf((low - mu) / bandwidth), cdf((high - mu) / bandwidth)
  else:
    p_lo, p_hi = jnp.zeros_like(mu), jnp.ones_like(mu)
  eps = jnp.finfo(mu.dtype).eps
  p = p_lo + (p_hi - p_lo) * jax.random.uniform(key, mu.shape, mu.dtype)
  return jnp.clip(mu + bandwidth * inverse(jnp.clip(p, eps, 1 - eps)), low, high)


def kernel_log_ratio(data: LoggedData, target_action: jax.Array, bandwidth: float,
                     kernel: str = "gaussian", truncate: bool = True) -> jax.Array:
  """log ρ_t [N, T] of a deterministic π_e with actions [N, T, a]: box-truncated kernel."""
  return log_ratio(data, log_kernel(data.action, target_action, bandwidth, kernel,
                                    truncate=truncate))


def _normalized(log_w: jax.Array) -> jax.Array:
  """w / mean_i w per column, from log w [N, T], stably (one exp per entry).

  A column where every weight is 0 (log w = −inf: e.g. a compact kernel whose support
  misses every logged action) has no normalised weights: it is NaN, deliberately, and
  so is the SN estimate (0/0: no trajectory carries information about that step).
  """
  m = jnp.max(log_w, axis=0, keepdims=True)
  e = jnp.exp(log_w - jnp.where(jnp.isfinite(m), m, 0.0))
  total = jnp.sum(e, axis=0, keepdims=True)
  return jnp.where(total > 0, e * (log_w.shape[0] / jnp.where(total > 0, total, 1.0)), jnp.nan)


def _weights(log_rho: jax.Array, self_normalized: bool):
  """(w_{0:t}, w_{0:t-1}) [N, T] (optionally normalised per step).

  w_{0:t-1} is w_{0:t} shifted one step (1 at t = 0); normalisation is per column, so
  the shift commutes with it.
  """
  log_w = jnp.cumsum(log_rho, axis=1)
  w = _normalized(log_w) if self_normalized else jnp.exp(log_w)
  return w, jnp.pad(w[:, :-1], ((0, 0), (1, 0)), constant_values=1.0)


def _returns(data: LoggedData, discount: float) -> jax.Array:
  """Σ_t γ^t r_t of each trajectory [N] (padding masked)."""
  mask = valid_mask(data.terminated, data.truncated)
  return jnp.sum(data.reward * mask * discount ** jnp.arange(data.horizon), axis=1)


def _times(w: jax.Array, x: jax.Array, keep) -> jax.Array:
  """w · x where `keep` and x ≠ 0, else 0: an overflowed w (inf) times 0 gives 0, not NaN."""
  return jnp.where(keep & (x != 0), w * x, 0.0)


def _tis(returns: jax.Array, log_rho: jax.Array, self_normalized: bool) -> jax.Array:
  log_w = jnp.sum(log_rho, axis=1)
  if self_normalized:
    return jnp.mean(_times(_normalized(log_w[:, None])[:, 0], returns, True))
  return jnp.mean(_times(jnp.exp(log_w), returns, True))


def _pdis(data: LoggedData, w: jax.Array, discount: float) -> jax.Array:
  mask = valid_mask(data.terminated, data.truncated)
  gammas = discount ** jnp.arange(data.horizon)
  return jnp.mean(jnp.sum(gammas * _times(w, data.reward, mask), axis=1))


def _dr(data: LoggedData, w: jax.Array, w_prev: jax.Array, discount: float, q_sa: jax.Array,
        v_s: jax.Array) -> jax.Array:
  mask = valid_mask(data.terminated, data.truncated)
  gammas = discount ** jnp.arange(data.horizon)
  terms = _times(w, data.reward - q_sa, mask) + _times(w_prev, v_s, mask)
  return jnp.mean(jnp.sum(gammas * terms, axis=1))


def tis(data: LoggedData, log_rho: jax.Array, discount: float,
        self_normalized: bool = False) -> jax.Array:
  """Trajectory-wise IS (SNTIS if self_normalized) -> [] value estimate."""
  return _tis(_returns(data, discount), log_rho, self_normalized)


def pdis(data: LoggedData, log_rho: jax.Array, discount: float,
         self_normalized: bool = False) -> jax.Array:
  """Per-decision IS (SNPDIS if self_normalized) -> []."""
  return _pdis(data, _weights(log_rho, self_normalized)[0], discount)


def dr(data: LoggedData, log_rho: jax.Array, discount: float, q_sa: jax.Array,
       v_s: jax.Array, self_normalized: bool = False) -> jax.Array:
  """Doubly robust (SNDR if self_normalized) with Q̂(s_t, a_t), V̂(s_t) [N, T] -> []."""
  return _dr(data, *_weights(log_rho, self_normalized), discount, q_sa, v_s)


def dm(v_s: jax.Array) -> jax.Array:
  """Direct method: mean_i V̂(s_0) from V̂ [N, T] -> []."""
  return jnp.mean(v_s[:, 0])


ESTIMATORS = ("dm", "tis", "pdis", "dr", "sntis", "snpdis", "sndr")


def estimate_all(data: LoggedData, log_rho: jax.Array, discount: float,
                 q_sa: Optional[jax.Array] = None, v_s: Optional[jax.Array] = None) -> dict:
  """Every estimator for P candidates at once (vmapped).

  Args: log_rho [P, N, T]; q_sa, v_s [P, N, T] (FQE predictions; DM and DR are left
  out when None). Returns {estimator name: [P] values}.
  """

  check(data, discount)
  n, t = data.reward.shape
  if log_rho.ndim != 3 or log_rho.shape[1:] != (n, t):
    raise DataError(f"log_rho must be [P, N={n}, T={t}], got {log_rho.shape}")
  if (q_sa is None) != (v_s is None):
    raise DataError("give both q_sa and v_s (for DM and DR) or neither")
  if q_sa is not None:
    for name, x in (("q_sa", q_sa), ("v_s", v_s)):
      if x.shape != log_rho.shape:
        raise DataError(f"{name} must have log_rho's shape {log_rho.shape}, got {x.shape}")
  mask = valid_mask(data.terminated, data.truncated)
  if not isinstance(log_rho, jax.core.Tracer) and not isinstance(mask, jax.core.Tracer):
    lr, valid = np.asarray(log_rho), np.asarray(mask)[None]
    for what, bad in (("NaN", np.isnan(lr)), ("+inf", np.isposinf(lr))):
      bad = bad & valid
      if bad.any():
        p, i, j = np.argwhere(bad)[0]
        raise DataError(f"log_rho has {int(bad.sum())} {what} values on valid steps (first at "
                        f"candidate {p}, trajectory {i}, step {j}); check the target log-probabilities")
  log_rho = jnp.where(mask, log_rho, 0.0)          # padding carries ρ = 1, whatever was there
  returns = _returns(data, discount)

  def one(lr, q, v):
    # The weights are formed once per candidate and shared by PDIS and DR (plain and SN).
    w, w_prev = _weights(lr, False)
    sn, sn_prev = _weights(lr, True)
    out = {"tis": _tis(returns, lr, False), "pdis": _pdis(data, w, discount),
           "sntis": _tis(returns, lr, True), "snpdis": _pdis(data, sn, discount)}
    if q is not None:
      out.update(dm=dm(v), dr=_dr(data, w, w_prev, discount, q, v),
                 sndr=_dr(data, sn, sn_prev, discount, q, v))
    return out

  if q_sa is None:
    return jax.vmap(lambda lr: one(lr, None, None))(log_rho)
  return jax.vmap(one)(log_rho, q_sa, v_s)
