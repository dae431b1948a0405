"""Running reward normalisation, as stable-baselines' VecNormalize and gym's NormalizeReward.

Each env keeps a discounted return R ← γ R + r (reset to 0 after its episode ends); the
rewards are divided by the running standard deviation of R over every env and step so
far, then clipped to ±clip:

    R_t = γ R_{t−1} (1 − done_{t−1}) + r_t,    stats ← stats ∪ {R_t over envs},
    r̃_t = clip(r_t / sqrt(Var[R] + ε), −clip, clip),  ε = 1e-8.

The statistics are updated with each step's batch of returns before that step's reward
is scaled (VecNormalize's order). The state is a pytree carried in the agent's state, so
a resumed run continues with the same statistics. `normalize` runs the recursion over a
collected segment with `lax.scan`; since the policy never sees the reward, that equals
normalising inside the env loop.

Differences between the two reference wrappers, and ours: VecNormalize (used by MDPO's
code) resets R at every episode end, gym's NormalizeReward in PROPS's code only at
terminations, and within the terminating step (R_T = r_T, carried into the next
episode); we reset after every episode end (termination or truncation), as VecNormalize.
Both start their variance at 1 with a count of 1e-4; ours starts from an empty count
(the first batch sets the variance).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from algorithms.common.running_stats import RunningStats

EPS = 1e-8


@struct.dataclass
class RewardNormState:
  """returns [num_envs] running discounted return per env; stats: RunningStats of size 1
  over those returns."""

  returns: jax.Array
  stats: RunningStats

  @classmethod
  def create(cls, num_envs: int) -> "RewardNormState":
    """Zero returns, empty statistics (scale 1 until the first update)."""
    return cls(jnp.zeros((num_envs,), jnp.float32), RunningStats.create(1))

  @property
  def scale(self) -> jax.Array:
    """[] the current divisor sqrt(Var[R] + ε) (1 before any data)."""
    return jnp.sqrt(self.stats.std[0] ** 2 + EPS)


def normalize_with_scale(state: RewardNormState, reward: jax.Array, done: jax.Array,
                         discount: float, clip: float):
  """Normalises a segment reward [T, num_envs] (done [T, num_envs]: the episode ended at
  that step) -> (new state, normalised rewards [T, num_envs], scale [T] each step used)."""

  def body(s: RewardNormState, x):
    r, d = x
    returns = s.returns * discount + r
    stats = s.stats.update(returns[:, None])
    scale = RewardNormState(returns, stats).scale
    out = jnp.clip(r / scale, -clip, clip)
    return RewardNormState(jnp.where(d, 0.0, returns), stats), (out, scale)

  state, (out, scale) = jax.lax.scan(body, state, (reward.astype(jnp.float32), done))
  return state, out, scale


def normalize(state: RewardNormState, reward: jax.Array, done: jax.Array, discount: float,
              clip: float) -> tuple[RewardNormState, jax.Array]:
  """`normalize_with_scale` without the scales -> (new state, normalised rewards [T, B])."""
  return normalize_with_scale(state, reward, done, discount, clip)[:2]
