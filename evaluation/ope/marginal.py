r"""Marginal OPE: state-action marginal importance sampling (SAM-IS) and its doubly robust
form (SAM-DR), with the weights learned by minimax weight learning (MWL).

MWL (Uehara, Huang & Jiang 2020, "Minimax Weight and Q-Function Learning for Off-Policy
Evaluation", Eq. 4 and Lemma 1) finds w(s, a) with L(w, f) = 0 for every test function f.
We use its finite-horizon form, with the time step among the features (as Xie et al.
2019's marginalised IS for finite horizons). Per trajectory of the logged data, with
m_t = 0 where step t ends the episode (terminal, time limit, or the horizon T) and 1
otherwise, x_t = φ(s_t, a_t, t), x'_t = φ(s_{t+1}, a' ~ π_e(s_{t+1}), t+1) and
x_0 = φ(s_0, a ~ π_e(s_0), 0):

  L(w, f) = E_D[ Σ_t γ^t w(x_t) (f(x_t) − γ m_t f(x'_t)) ] − E_{s_0}[ f(x_0) ].

Under π_e, Σ_t γ^t E[f(x_t) − γ m_t f(x'_t)] telescopes to E[f(x_0)], so the ratio of
occupancies w*(s, a, t) = P_{π_e}(s_t = s, a_t = a) / P_{π_b}(s_t = s, a_t = a) makes
L(w*, f) = 0 for every f, exactly, horizon end included (the infinite-horizon form of the
paper would leave a γ^T E[f(x_T)] term). For f in the unit ball of an RKHS with kernel k,
max_f L(w, f)² = ‖μ_w‖² with μ_w = E_D[Σ_t γ^t w(x_t)(k(x_t, ·) − γ m_t k(x'_t, ·))] −
E[k(x_0, ·)] (the paper's Lemma 1 closed form). The trajectories are the independent
samples, so we minimise the U-statistic over trajectories, (1/(N(N−1))) Σ_{i≠j} ⟨ψ_i, ψ_j⟩
with ψ_i trajectory i's term: a minibatch estimate ⟨μ̂_1, μ̂_2⟩ of two independent
minibatches of transitions in which the products of points from the same trajectory are
left out. This matters: within a trajectory the sum telescopes only in expectation
(x'_t carries a fresh a' ~ π_e where x_{t+1} carries the logged action), and the
same-trajectory products, ‖ψ_i‖², add that noise times w², a penalty on the weights'
size; it shrank the learned weights to 0.6-0.85 even with π_e = π_b, where the exact
ratio is 1 (`benchmarks/mwl_ablation.py`, on-policy check). The product of one batch's
μ̂ with itself (SCOPE-RL's V-statistic) adds the same penalty again. w(x) =
softplus(g_θ(x)) (a network, or linear for hidden = ()), with Adam and a learning rate
decayed linearly to 0. The U-statistic is unbiased but has no lower bound where a region
of (s, a, t) is seen in one trajectory only (its weight then has a slope and no
curvature), so there the result rests on the step budget.

Kernels on the features: "gaussian", exp(−‖x − y‖² / (2h²)) on features standardised
over the logged data, h by the median heuristic (h² = median ‖x − y‖² / 2 over a
minibatch) unless given; "linear", φ(x)ᵀφ(y), for which μ̂ is computed in feature space
(with one-hot features the test class is every tabular function, and the minimiser is
the exact ratio). With `time_bandwidth` = h_t (in steps) the Gaussian kernel is
multiplied by exp(−(t − t')² / (2h_t²)) on the points' time steps, a product kernel that
resolves t to about h_t steps whatever (s, a)'s bandwidth. The finite-horizon constraint
that ties the weight mass alive at step τ to the mass carried on from τ − 1 is the test
function 1{t = τ}; t/T as one standardised feature among the others puts it far outside
the unit ball, and without it the late weights collapse (`benchmarks/mwl_ablation.py`,
Part 4). `time_only` = c > 0 makes the kernel k_t · (k_φ + c), k_φ the Gaussian kernel
on the features (which hold t/T too, so t enters both factors): the test functions
then include every g(t) (norm² ‖g‖²_{k_t} / c), which ties the weight mass at each step
to the mass carried on from the step before, whatever the (s, a) bandwidth.

Estimators, per trajectory i:

  SAM-IS  mean_i Σ_t γ^t w(x_t) r_t
  SAM-DR  mean_i [ V̂_0(s_0) + Σ_t γ^t w(x_t) (r_t + γ m_t V̂_{t+1}(s_{t+1}) − Q̂_t(s_t, a_t)) ]

SAM-DR is unbiased when either w is the occupancy ratio or Q̂ is π_e's Q (with V̂ its mean
under π_e). Neither needs the behaviour policy's density. A deterministic π_e on
continuous actions has no occupancy ratio: `evaluation.sweep` then gives MWL the
kernel-smoothed policy that the kernel IS estimators weigh. SAM-IS is SCOPE-RL's `StateActionMarginalIS` with n_step_pdis = 0
(`scope_rl/ope/continuous/marginal_estimators.py`). Its `StateActionMarginalDR` uses
Q̂(s_t, π(s_t)) at the same step in place of V̂_{t+1}(s_{t+1}); that term does not cancel
Q̂(s_t, a_t) in expectation, so it is not doubly robust, and we keep the standard form.
SCOPE-RL's MWL (`minimax_weight_learning_continuous.py`) differs as well: it feeds the
logged (behaviour) actions where the loss needs π_e's, learns a stationary ratio without
time, and uses the biased one-batch loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from algorithms.common.networks import MLP
from evaluation.data import DataError, LoggedData, check, valid_mask

MARGINAL_ESTIMATORS = ("sam_is", "sam_dr")
MAX_STEP_MASS = 2.0   # `step_mass` above this (the exact one is at most 1): likely diverged
_SOFTPLUS_ONE = 0.5413248546129181   # softplus(x) = 1: the weights start at 1


@dataclasses.dataclass(frozen=True)
class MWLConfig:
  """MWL settings: the weight network (hidden = () is linear in the features), Adam,
  steps, transitions per minibatch (two minibatches a step), kernel and its bandwidth
  (None: the median heuristic, times bandwidth_scale), and an optional time bandwidth in
  steps (a product kernel in t; None: t is only a feature) with `time_only`, the weight c
  of the time-only test functions added to it. same_trajectory_pairs=True keeps
  the products of points from one trajectory in the loss (biased; for ablations only).
  The defaults recover w = 1 on-policy (benchmarks/mwl_ablation.py); 500 steps at 1e-3
  stop at a mean weight of 0.66 over the first 10 steps."""

  hidden: Sequence[int] = (64, 64)
  learning_rate: float = 3e-3
  steps: int = 2000
  batch_size: int = 256
  kernel: str = "gaussian"
  bandwidth: Optional[float] = None
  bandwidth_scale: float = 1.0
  time_bandwidth: Optional[float] = None
  time_only: float = 0.0
  same_trajectory_pairs: bool = False

  def validate(self) -> None:
    """Raises ValueError for settings that cannot work."""
    for name in ("steps", "batch_size"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"MWLConfig.{name} must be >= 1, got {getattr(self, name)}")
    if not self.learning_rate > 0:
      raise ValueError(f"MWLConfig.learning_rate must be > 0, got {self.learning_rate}")
    if self.kernel not in ("gaussian", "linear"):
      raise ValueError(f"MWLConfig.kernel must be 'gaussian' or 'linear', got {self.kernel!r}")
    if not self.bandwidth_scale > 0:
      raise ValueError(f"MWLConfig.bandwidth_scale must be > 0, got {self.bandwidth_scale}")
    if self.bandwidth is not None and not self.bandwidth > 0:
      raise ValueError(f"MWLConfig.bandwidth must be > 0 or None, got {self.bandwidth}")
    if self.time_bandwidth is not None:
      if not self.time_bandwidth > 0:
        raise ValueError(f"MWLConfig.time_bandwidth must be > 0 or None, got {self.time_bandwidth}")
      if self.kernel != "gaussian":
        raise ValueError("MWLConfig.time_bandwidth needs kernel='gaussian' (a linear kernel "
                         "resolves t through the features)")
    if not self.time_only >= 0:
      raise ValueError(f"MWLConfig.time_only must be >= 0, got {self.time_only}")
    if self.time_only > 0 and self.time_bandwidth is None:
      raise ValueError("MWLConfig.time_only needs a time_bandwidth")
    if any(int(h) < 1 for h in self.hidden):
      raise ValueError(f"MWLConfig.hidden must be positive layer sizes, got {self.hidden}")


def default_features(obs: jax.Array, action: jax.Array, t: jax.Array, horizon: int) -> jax.Array:
  """φ(s, a, t) = [s, a, t / T]: obs [..., d], action [..., a], t [...] -> [..., d + a + 1]."""
  return jnp.concatenate([obs, action, (t / horizon)[..., None].astype(obs.dtype)], axis=-1)


def continuation(data: LoggedData) -> jax.Array:
  """m_t [N, T]: 1 where step t continues into step t + 1 (valid, not an episode's end,
  not the horizon's last step), else 0."""
  mask = valid_mask(data.terminated, data.truncated)
  cont = (mask & ~(data.terminated | data.truncated)).astype(jnp.float32)
  return cont.at[:, -1].set(0.0)


def mwl_embedding_product(c1: jax.Array, z1: jax.Array, c2: jax.Array, z2: jax.Array,
                          kernel: str, bandwidth: jax.Array, g1: Optional[jax.Array] = None,
                          g2: Optional[jax.Array] = None, t1: Optional[jax.Array] = None,
                          t2: Optional[jax.Array] = None,
                          time_bandwidth: Optional[float] = None,
                          time_only: float = 0.0) -> jax.Array:
  """⟨Σ_i c1_i k(z1_i, ·), Σ_j c2_j k(z2_j, ·)⟩ = c1ᵀ K(z1, z2) c2 for c [M], z [M, F];
  with groups g1 [M], g2 [M'] (trajectory ids), the pairs with g1_i = g2_j left out; with
  time_bandwidth h_t and time steps t1 [M], t2 [M'] (Gaussian kernel only), K is
  multiplied by exp(−(t1_i − t2_j)² / (2h_t²)) after `time_only` is added to it."""
  if kernel == "linear":
    full = jnp.dot(c1 @ z1, c2 @ z2)
    if g1 is None:
      return full
    # in feature space: minus Σ_g ⟨Σ_{i∈g} c1_i z1_i, Σ_{j∈g} c2_j z2_j⟩ over shared ids
    ids, index = jnp.unique(jnp.concatenate([g1, g2]), size=g1.shape[0] + g2.shape[0],
                            return_inverse=True)
    del ids
    s1 = jax.ops.segment_sum(c1[:, None] * z1, index[:g1.shape[0]], g1.shape[0] + g2.shape[0])
    s2 = jax.ops.segment_sum(c2[:, None] * z2, index[g1.shape[0]:], g1.shape[0] + g2.shape[0])
    return full - jnp.sum(s1 * s2)
  d2 = jnp.sum(z1**2, 1)[:, None] + jnp.sum(z2**2, 1)[None, :] - 2 * z1 @ z2.T
  gram = jnp.exp(-jnp.maximum(d2, 0.0) / (2 * bandwidth**2))
  if time_bandwidth is not None:
    dt = (t1[:, None] - t2[None, :]).astype(gram.dtype)
    gram = (gram + time_only) * jnp.exp(-dt**2 / (2 * time_bandwidth**2))
  if g1 is not None:
    gram = jnp.where(g1[:, None] == g2[None, :], 0.0, gram)
  return c1 @ gram @ c2


def mwl(data: LoggedData, sample_action: Callable[[Any, jax.Array, jax.Array], jax.Array],
        policy_params: Any, discount: float, key: jax.Array, config: MWLConfig = MWLConfig(),
        features: Callable = default_features) -> jax.Array:
  """Learns the occupancy ratio w(s_t, a_t, t) for one target policy -> w [N, T] at the
  logged steps (0 on padding).

  sample_action(policy_params, obs [M, d], key) -> action [M, a] samples π_e (FQE's
  interface); features(obs, action, t, T) -> φ [..., F] (`default_features`).
  Raises ValueError for a bad config, DataError for bad data.
  """
  config.validate()
  check(data, discount)
  n, horizon = data.reward.shape
  if n < 2 and not config.same_trajectory_pairs:
    raise DataError(f"MWL needs at least 2 trajectories (its loss pairs different ones), got {n}")
  mask = valid_mask(data.terminated, data.truncated)
  cont = continuation(data)
  flat_valid = jnp.nonzero(mask.ravel(), size=n * horizon, fill_value=0)[0]
  num_valid = jnp.maximum(mask.sum(), 1)
  per_trajectory = num_valid / n                  # E_D[Σ_t ·] = (V / N) · mean over valid steps
  t_index = jnp.broadcast_to(jnp.arange(horizon), (n, horizon))
  obs_next = jnp.concatenate([data.obs[:, 1:], data.obs[:, -1:]], axis=1)

  # Standardisation of the features over the logged steps (Gaussian kernel only).
  feats = features(data.obs, data.action, t_index, horizon)
  w_valid = mask[..., None].astype(feats.dtype)
  mean = jnp.sum(feats * w_valid, (0, 1)) / num_valid
  std = jnp.sqrt(jnp.sum((feats - mean) ** 2 * w_valid, (0, 1)) / num_valid)
  if config.kernel == "gaussian":
    scale = lambda z: (z - mean) / jnp.where(std > 1e-6, std, 1.0)
  else:
    scale = lambda z: z
  net = MLP(tuple(config.hidden), 1, activation="relu")
  weight = lambda p, z: jax.nn.softplus(net.apply(p, z)[..., 0] + _SOFTPLUS_ONE)

  def batch(k):
    """Points z [3B, F] and coefficients' parts of one minibatch of the embedding."""
    k_idx, k_init, k_next, k_first = jax.random.split(k, 4)
    b = config.batch_size
    flat = flat_valid[jax.random.randint(k_idx, (b,), 0, num_valid)]
    i, t = flat // horizon, flat % horizon
    init = jax.random.randint(k_init, (b,), 0, n)
    s_next = obs_next[i, t]
    a_next = sample_action(policy_params, s_next, k_next)
    a_first = sample_action(policy_params, data.obs[init, 0], k_first)
    x = scale(features(data.obs[i, t], data.action[i, t], t, horizon))
    x_next = scale(features(s_next, a_next, t + 1, horizon))
    x_first = scale(features(data.obs[init, 0], a_first, jnp.zeros_like(t), horizon))
    g_t = per_trajectory * discount ** t.astype(jnp.float32) / b
    return (x, x_next, x_first, g_t, cont[i, t], jnp.concatenate([i, i, init]),
            jnp.concatenate([t, t + 1, jnp.zeros_like(t)]))

  def coefficients(p, parts):
    x, x_next, x_first, g_t, m, _, _ = parts
    w = weight(p, x)
    c = jnp.concatenate([g_t * w, -discount * m * g_t * w,
                         jnp.full((x.shape[0],), -1.0 / x.shape[0])])
    return c, jnp.concatenate([x, x_next, x_first])

  k_init, k_bw, k_steps = jax.random.split(key, 3)
  params = net.init(k_init, feats[0, :1])
  bandwidth = jnp.asarray(config.bandwidth or 1.0, jnp.float32)
  if config.kernel == "gaussian" and config.bandwidth is None:
    z = coefficients(params, batch(k_bw))[1]       # median heuristic on one minibatch's points
    d2 = jnp.sum((z[:, None] - z[None, :]) ** 2, -1)
    bandwidth = config.bandwidth_scale * jnp.sqrt(
        jnp.maximum(jnp.median(d2[jnp.triu_indices(z.shape[0], 1)]), 1e-6) / 2)

  def loss(p, k):
    k1, k2 = jax.random.split(k)
    b1, b2 = batch(k1), batch(k2)
    c1, z1 = coefficients(p, b1)
    c2, z2 = coefficients(p, b2)
    # E over the draws: (1/N²) Σ_{i≠j} ⟨ψ_i, ψ_j⟩; N/(N−1) makes it the U-statistic
    times = dict(t1=b1[-1], t2=b2[-1], time_bandwidth=config.time_bandwidth,
                 time_only=config.time_only)
    if config.same_trajectory_pairs:
      return mwl_embedding_product(c1, z1, c2, z2, config.kernel, bandwidth, **times)
    return n / (n - 1) * mwl_embedding_product(c1, z1, c2, z2, config.kernel, bandwidth,
                                                b1[-2], b2[-2], **times)

  opt = optax.adam(optax.linear_schedule(config.learning_rate, 0.0, config.steps))

  def step(carry, k):
    p, opt_state = carry
    grads = jax.grad(loss)(p, k)
    updates, opt_state = opt.update(grads, opt_state)
    return (optax.apply_updates(p, updates), opt_state), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)),
                                jax.random.split(k_steps, config.steps))
  # evaluated one time step at a time: [N, F] per step keeps the network's activations
  # (vmapped over candidates by the sweep) at [P, N, hidden], not [P, N, T, hidden]
  w = jax.lax.map(lambda z: weight(params, scale(z)), jnp.swapaxes(feats, 0, 1))
  return jnp.swapaxes(w, 0, 1) * mask


def step_mass(data: LoggedData, w: jax.Array) -> jax.Array:
  """(1/N) Σ_i w(x_{i,t}) over the trajectories alive at t: w [..., N, T] -> [..., T].

  For the exact ratio its expectation is P_{π_e}(alive at t) ≤ 1 (= 1 at t = 0), since
  E_b[w*(x_t) 1{alive at t}] = P_e(alive at t). A fit whose mass climbs well above 1 has
  diverged (the U-statistic has no lower bound; `experiments.ops` flags it)."""
  mask = valid_mask(data.terminated, data.truncated)
  return jnp.mean(jnp.where(mask, w, 0.0), axis=-2)


def sam_is(data: LoggedData, w: jax.Array, discount: float) -> jax.Array:
  """SAM-IS from weights w [N, T] -> [] value estimate."""
  mask = valid_mask(data.terminated, data.truncated)
  gammas = discount ** jnp.arange(data.horizon)
  return jnp.mean(jnp.sum(gammas * jnp.where(mask, w * data.reward, 0.0), axis=1))


def sam_dr(data: LoggedData, w: jax.Array, discount: float, q_sa: jax.Array,
           v_s: jax.Array) -> jax.Array:
  """SAM-DR from weights w and FQE's Q̂_t(s_t, a_t), V̂_t(s_t), each [N, T] -> []."""
  mask = valid_mask(data.terminated, data.truncated)
  gammas = discount ** jnp.arange(data.horizon)
  v_next = jnp.pad(v_s[:, 1:], ((0, 0), (0, 1)))
  td = data.reward + discount * continuation(data) * v_next - q_sa
  return jnp.mean(v_s[:, 0] + jnp.sum(gammas * jnp.where(mask, w * td, 0.0), axis=1))


def estimate_marginal(data: LoggedData, w: jax.Array, discount: float,
                      q_sa: Optional[jax.Array] = None, v_s: Optional[jax.Array] = None) -> dict:
  """SAM-IS (and SAM-DR when Q̂, V̂ are given) for P candidates: w, q_sa, v_s [P, N, T]
  -> {name: [P]}."""
  if q_sa is None:
    return jax.vmap(lambda w_: {"sam_is": sam_is(data, w_, discount)})(w)
  return jax.vmap(lambda w_, q, v: {"sam_is": sam_is(data, w_, discount),
                                    "sam_dr": sam_dr(data, w_, discount, q, v)})(w, q_sa, v_s)
