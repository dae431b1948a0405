"""Logged data: one format for OPE and offline RL, its collection, saving and validation.

A dataset holds N trajectories of a horizon of T steps, each one episode from its
reset:

    obs [N, T, d] float32         observation acted on at step t
    action [N, T, a] float32      action taken, in [-1, 1]^a
    reward [N, T] float32
    terminated [N, T] bool        the step entered a terminal state
    truncated [N, T] bool         the step hit the episode limit or the horizon (t = T-1)
                                  without terminating; estimators and FQE end the
                                  trajectory there either way
    behavior_log_prob [N, T] f32  log pi_b(a_t | s_t) (a density: continuous actions)

plus metadata (env, behaviour policy id, discount, seed, ...). After an episode's
terminal step the rest of its row is padding: zeros, masked out by `valid_mask`. Saved
as `<path>.npz` with a JSON sidecar `<path>.json`. `load` (and `validate`) check
shapes, dtypes, finiteness, episode structure and propensities, and raise `DataError`
with one message per problem.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import Env, batch_reset

ARRAYS = ("obs", "action", "reward", "terminated", "truncated", "behavior_log_prob")


class DataError(ValueError):
  """Logged data that cannot be used; the message lists every problem found."""


@struct.dataclass
class LoggedData:
  """The arrays above; `metadata` is a static dict (env, behavior_policy, discount, seed)."""

  obs: jax.Array
  action: jax.Array
  reward: jax.Array
  terminated: jax.Array
  truncated: jax.Array
  behavior_log_prob: jax.Array
  metadata: dict = struct.field(pytree_node=False, default_factory=dict)

  @property
  def num_trajectories(self) -> int:
    return int(self.reward.shape[0])

  @property
  def horizon(self) -> int:
    return int(self.reward.shape[1])


def valid_mask(terminated: jax.Array, truncated: jax.Array) -> jax.Array:
  """[..., T] bool: steps up to and including each trajectory's first terminal/limit step."""
  done = (terminated | truncated).astype(jnp.int32)
  ended_before = jnp.cumsum(done, axis=-1) - done
  return ended_before == 0


def discounted_returns(data: LoggedData, discount: float) -> jax.Array:
  """[N] Σ_t γ^t r_t over each trajectory's valid steps."""
  gammas = discount ** jnp.arange(data.horizon)
  return jnp.sum(data.reward * valid_mask(data.terminated, data.truncated) * gammas, axis=-1)


def collect(env: Env, policy: Callable, log_prob: Callable, key: jax.Array,
            num_trajectories: int, horizon: int) -> LoggedData:
  """Runs `num_trajectories` episodes of a stochastic behaviour policy in parallel (pure).

  policy(obs [N, d], key) -> action [N, a]; log_prob(obs [N, d], action [N, a]) -> [N].
  `env` must have episode_length >= horizon; steps after an episode ends are padding.
  The last step of an episode still running at t = horizon - 1 is marked truncated.
  """
  k_reset, k_act = jax.random.split(key)
  state = batch_reset(env, k_reset, num_trajectories)

  def body(carry, k):
    s, alive = carry
    action = policy(s.obs, k)
    nxt = jax.vmap(env.step)(s, action)
    out = dict(obs=s.obs, action=action, reward=nxt.reward, terminated=nxt.terminated,
               truncated=nxt.truncated, behavior_log_prob=log_prob(s.obs, action))
    out = jax.tree.map(lambda x: jnp.where(alive.reshape((-1,) + (1,) * (x.ndim - 1)), x,
                                           jnp.zeros_like(x)), out)
    return (nxt, alive & ~(nxt.terminated | nxt.truncated)), out

  init = (state, jnp.ones((num_trajectories,), bool))
  _, traj = jax.lax.scan(body, init, jax.random.split(k_act, horizon))
  traj = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), traj)  # [T, N] -> [N, T]
  last_alive = valid_mask(traj["terminated"], traj["truncated"])[:, -1] & ~traj["terminated"][:, -1]
  traj["truncated"] = traj["truncated"].at[:, -1].set(traj["truncated"][:, -1] | last_alive)
  return LoggedData(**traj)


_NDIM = {"obs": 3, "action": 3, "terminated": 2, "truncated": 2, "behavior_log_prob": 2}


def _shape_problems(shapes: dict[str, tuple]) -> list[str]:
  """One message per array whose shape does not fit [N, T(, ...)]; a reward that is not
  [N, T] or empty data raises DataError at once."""
  if len(shapes["reward"]) != 2:
    raise DataError(f"reward must be [N, T], got shape {shapes['reward']}")
  n, t = shapes["reward"]
  if n == 0 or t == 0:
    raise DataError(f"logged data is empty: N={n} trajectories of T={t} steps")
  return [f"{k} must have shape [N={n}, T={t}{', ...' if nd == 3 else ''}], got {shapes[k]}"
          for k, nd in _NDIM.items() if len(shapes[k]) != nd or tuple(shapes[k][:2]) != (n, t)]


def validate(arrays: dict[str, Any]) -> None:
  """Raises DataError listing every problem of a dict of the ARRAYS (numpy or jax)."""
  problems = []
  missing = [k for k in ARRAYS if k not in arrays]
  if missing:
    raise DataError(f"logged data lacks arrays: {', '.join(missing)}")
  a = {k: np.asarray(arrays[k]) for k in ARRAYS}
  problems += _shape_problems({k: a[k].shape for k in ARRAYS})
  for k in ("terminated", "truncated"):
    if a[k].dtype != np.bool_:
      problems.append(f"{k} must be bool, got {a[k].dtype}")
  for k in ("obs", "action", "reward", "behavior_log_prob"):
    if not np.issubdtype(a[k].dtype, np.floating):
      problems.append(f"{k} must be floating point, got {a[k].dtype}")
  if problems:
    raise DataError("; ".join(problems))
  for k in ("obs", "action", "reward"):
    bad = ~np.isfinite(a[k])
    if bad.any():
      idx = np.argwhere(bad)[0]
      problems.append(f"{k} has {int(bad.sum())} non-finite values (first at trajectory "
                      f"{idx[0]}, step {idx[1]})")
  outside = np.isfinite(a["action"]) & (np.abs(a["action"]) > 1.0)
  if outside.any():
    idx = np.argwhere(outside)[0]
    problems.append(f"action has {int(outside.sum())} values outside [-1, 1] (first at trajectory "
                    f"{idx[0]}, step {idx[1]}: {a['action'][tuple(idx)]:.4g}); rescale actions "
                    "to the env's [-1, 1] box")
  done_i = (a["terminated"] | a["truncated"]).astype(np.int64)
  mask = (np.cumsum(done_i, axis=-1) - done_i) == 0          # valid_mask, in numpy (jit-safe)
  lp = a["behavior_log_prob"]
  for test, what, hint in (
      (np.isneginf, "zero propensities (log-probability -inf)", "importance weights need pi_b > 0"),
      (np.isposinf, "+inf log-propensities", "a density cannot be infinite: check how the "
       "log-probability was computed (e.g. a zero standard deviation)"),
      (np.isnan, "NaN log-propensities", "the behaviour policy's log-probability was not computed")):
    bad = mask & test(lp)
    if bad.any():
      idx = np.argwhere(bad)[0]
      problems.append(f"behavior_log_prob has {int(bad.sum())} {what} on valid steps (first at "
                      f"trajectory {idx[0]}, step {idx[1]}); {hint}")
  both = a["terminated"] & a["truncated"]
  if both.any():
    problems.append(f"{int(both.sum())} steps are both terminated and truncated")
  done = a["terminated"] | a["truncated"]
  if (done & ~mask).any():
    problems.append("a trajectory has steps marked done after its episode ended")
  if problems:
    raise DataError("; ".join(problems))


def _concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check(data: LoggedData, discount: float | None = None, batch_dims: int = 0) -> None:
  """Checks logged data handed to an estimator; raises DataError.

  Shapes are always checked; values (finiteness, propensities, action range, episode
  structure) when the arrays are concrete, i.e. outside jit. `batch_dims` leading axes
  (e.g. [S] datasets) are allowed in front of [N, T]. A `discount` different from the
  metadata's is refused: the data's returns were defined with the metadata's.
  """
  if discount is not None and not 0.0 <= discount <= 1.0:
    raise DataError(f"discount must be in [0, 1], got {discount}")
  meta = data.metadata.get("discount") if data.metadata else None
  if discount is not None and meta is not None and abs(float(meta) - float(discount)) > 1e-9:
    raise DataError(f"discount {discount} differs from the logged data's metadata discount {meta}")
  arrays = {k: getattr(data, k) for k in ARRAYS}
  lead = arrays["reward"].shape[:batch_dims]
  if len(arrays["reward"].shape) != batch_dims + 2:
    raise DataError(f"reward must be [{'S, ' * batch_dims}N, T], got shape {arrays['reward'].shape}")
  if all(_concrete(x) for x in arrays.values()):
    flat = {k: np.asarray(v).reshape((-1,) + np.shape(v)[batch_dims + 1:]) if batch_dims else v
            for k, v in arrays.items()}
    validate(flat)
  else:
    problems = _shape_problems({k: x.shape[batch_dims:] for k, x in arrays.items()})
    problems += [f"{k} has leading axes {x.shape[:batch_dims]}, reward {lead}"
                 for k, x in arrays.items() if x.shape[:batch_dims] != lead]
    if problems:
      raise DataError("; ".join(problems))


def save(data: LoggedData, path: str) -> None:
  """Writes `path`.npz (arrays) and `path`.json (metadata and shapes)."""
  arrays = {k: np.asarray(getattr(data, k)) for k in ARRAYS}
  validate(arrays)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  meta = {**data.metadata, "num_trajectories": data.num_trajectories, "horizon": data.horizon,
          "obs_size": int(arrays["obs"].shape[-1]), "action_size": int(arrays["action"].shape[-1])}
  # Each file is written whole or not at all (tmp + rename): an interrupted save leaves
  # the previous files, never half of one.
  for ext, write in ((".npz", lambda f: np.savez_compressed(f, **arrays)),
                     (".json", lambda f: f.write(json.dumps(meta, indent=2).encode()))):
    with open(path + ext + ".tmp", "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(path + ext + ".tmp", path + ext)


def load(path: str) -> LoggedData:
  """Reads and validates `path`.npz + `path`.json; raises DataError on any problem."""
  for ext in (".npz", ".json"):
    if not os.path.exists(path + ext):
      raise DataError(f"no logged data at {path}{ext}")
  try:
    with np.load(path + ".npz") as f:
      arrays = {k: f[k] for k in f.files}
  except Exception as e:  # zipfile / zlib / numpy errors of a damaged or truncated file
    raise DataError(f"{path}.npz cannot be read, it is damaged or incomplete "
                    f"({type(e).__name__}: {e})") from None
  validate(arrays)
  try:
    with open(path + ".json") as f:
      meta = json.load(f)
  except ValueError as e:
    raise DataError(f"{path}.json cannot be read, it is damaged or incomplete ({e})") from None
  return LoggedData(**{k: jnp.asarray(arrays[k]) for k in ARRAYS}, metadata=meta)


def with_metadata(data: LoggedData, **meta) -> LoggedData:
  """A copy with metadata entries added."""
  return dataclasses.replace(data, metadata={**data.metadata, **meta})
