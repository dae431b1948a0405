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

Deterministic target policies have no density at the logged action; their ratio uses
a Gaussian kernel on the action, ρ_t = K_h(π_e(s_t) − a_t) / π_b(a_t|s_t) with
K_h(x) = (2πh²)^{-d/2} exp(−‖x‖²/(2h²)) — SCOPE-RL's default kernel. For d > 1 SCOPE-RL
keeps the 1-D constant (2πh²)^{-1/2}; we use the d-dimensional density (the two differ
by a constant per step, which the self-normalised forms cancel).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from evaluation.data import LoggedData, valid_mask


def log_ratio(data: LoggedData, target_log_prob: jax.Array) -> jax.Array:
  """log ρ_t [N, T] from log π_e(a_t|s_t) [N, T]; 0 on padding."""
  mask = valid_mask(data.terminated, data.truncated)
  return jnp.where(mask, target_log_prob - data.behavior_log_prob, 0.0)


def kernel_log_ratio(data: LoggedData, target_action: jax.Array, bandwidth: float) -> jax.Array:
  """log ρ_t [N, T] of a deterministic π_e with actions [N, T, a], Gaussian kernel of width h."""
  d = target_action.shape[-1]
  sq = jnp.sum((target_action - data.action) ** 2, axis=-1)
  log_k = -sq / (2 * bandwidth**2) - 0.5 * d * jnp.log(2 * jnp.pi * bandwidth**2)
  return log_ratio(data, log_k)


def _normalized(log_w: jax.Array) -> jax.Array:
  """w / mean_i w per column, from log w [N, T], stably (one exp per entry)."""
  e = jnp.exp(log_w - jnp.max(log_w, axis=0, keepdims=True))
  return e * (log_w.shape[0] / jnp.sum(e, axis=0, keepdims=True))


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


def _tis(returns: jax.Array, log_rho: jax.Array, self_normalized: bool) -> jax.Array:
  log_w = jnp.sum(log_rho, axis=1)
  if self_normalized:
    return jnp.sum(jax.nn.softmax(log_w) * returns)
  return jnp.mean(jnp.exp(log_w) * returns)


def _pdis(data: LoggedData, w: jax.Array, discount: float) -> jax.Array:
  mask = valid_mask(data.terminated, data.truncated)
  gammas = discount ** jnp.arange(data.horizon)
  return jnp.mean(jnp.sum(gammas * w * data.reward * mask, axis=1))


def _dr(data: LoggedData, w: jax.Array, w_prev: jax.Array, discount: float, q_sa: jax.Array,
        v_s: jax.Array) -> jax.Array:
  mask = valid_mask(data.terminated, data.truncated)
  gammas = discount ** jnp.arange(data.horizon)
  terms = w * (data.reward - q_sa) + w_prev * v_s
  return jnp.mean(jnp.sum(gammas * terms * mask, axis=1))


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
