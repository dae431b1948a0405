"""A two-state MDP with continuous actions whose values are known in closed form.

Obs is one-hot(s); the action a in (-1, 1) only matters through go = a > 0.
s' = 1 if go else 0 (deterministic); r(0, go) = 1, r(0, stay) = 0, r(1, go) = 0.5,
r(1, stay) = 2 and (1, stay) is terminal. Start in s = 0, horizon T, discount γ.
Policies are tanh-Gaussians with a mean per state and a shared scale: P(go | s) =
Φ(mean_s / scale). Exact Q_t and V_t follow by backward induction.
"""

import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from algorithms.common import distributions
from evaluation.data import LoggedData

R = np.array([[0.0, 1.0], [2.0, 0.5]])      # R[s, go]
TERMINAL = np.array([[False, False], [True, False]])
T, GAMMA = 4, 0.9


def raw(means, scale, s):
  """Network-like output [.., 2]: (loc, pre-softplus scale) for states s."""
  pre = np.log(np.expm1(scale - 1e-3))  # softplus(pre) + 1e-3 = scale
  loc = np.asarray(means)[s]
  return np.stack([loc, np.full_like(loc, pre, dtype=float)], axis=-1)


def p_go(means, scale):
  return norm.cdf(np.asarray(means) / scale)


def exact(means, scale):
  """(V [T+1, 2], Q [T, 2, 2]) under the policy, by backward induction."""
  p = p_go(means, scale)
  v = np.zeros((T + 1, 2))
  q = np.zeros((T, 2, 2))
  for t in reversed(range(T)):
    for s in range(2):
      for g in range(2):
        cont = 0.0 if TERMINAL[s, g] else GAMMA * v[t + 1, g]
        q[t, s, g] = R[s, g] + cont
      v[t, s] = p[s] * q[t, s, 1] + (1 - p[s]) * q[t, s, 0]
  return v, q


def sample(seed, n, means, scale):
  """N trajectories of a tanh-Gaussian behaviour policy -> (LoggedData, states [N, T])."""
  rng = np.random.default_rng(seed)
  s = np.zeros(n, int)
  alive = np.ones(n, bool)
  out = {k: [] for k in ("obs", "action", "reward", "terminated", "truncated", "lp", "state")}
  for t in range(T):
    u = np.asarray(means)[s] + scale * rng.standard_normal(n)
    a = np.tanh(u)
    g = (a > 0).astype(int)
    term = TERMINAL[s, g] & alive
    trunc = alive & ~term & (t == T - 1)
    lp = np.asarray(distributions.log_prob_action(jnp.asarray(raw(means, scale, s), jnp.float32),
                                                  jnp.asarray(a[:, None], jnp.float32)))
    out["obs"].append(np.eye(2)[s] * alive[:, None])
    out["action"].append(a[:, None] * alive[:, None])
    out["reward"].append(R[s, g] * alive)
    out["terminated"].append(term)
    out["truncated"].append(trunc)
    out["lp"].append(lp * alive)
    out["state"].append(s.copy())
    alive = alive & ~term
    s = g
  st = {k: np.stack(v, axis=1) for k, v in out.items()}
  data = LoggedData(obs=jnp.asarray(st["obs"], jnp.float32), action=jnp.asarray(st["action"], jnp.float32),
                    reward=jnp.asarray(st["reward"], jnp.float32), terminated=jnp.asarray(st["terminated"]),
                    truncated=jnp.asarray(st["truncated"]),
                    behavior_log_prob=jnp.asarray(st["lp"], jnp.float32))
  return data, st["state"]


def target_log_prob(data, states, means, scale):
  """log π_e(a_t | s_t) [N, T] of the logged actions."""
  return distributions.log_prob_action(jnp.asarray(raw(means, scale, states), jnp.float32),
                                       data.action)
