"""The env protocol shared by every backend: `EnvState` and the `Env` base class."""

from __future__ import annotations

import abc
from typing import Any

import jax
from flax import struct


@struct.dataclass
class EnvState:
  """One environment's state (add a leading axis per batch dimension).

  Attributes:
    obs: [obs_size] float32 observation after the last transition.
    reward: [] float32 reward of the last transition.
    terminated: [] bool, the last transition entered a terminal state (no bootstrap).
    truncated: [] bool, the episode was cut by the time limit (bootstrap from
      `info["final_obs"]`). Never both true.
    info: dict of wrapper bookkeeping (`steps`, `episode_return`, `final_obs`, ...).
    sim: the backend's own state (brax `State`, playground `State`, or None).
  """

  obs: jax.Array
  reward: jax.Array
  terminated: jax.Array
  truncated: jax.Array
  info: dict[str, Any]
  sim: Any = None

  @property
  def done(self) -> jax.Array:
    """[] bool: the episode ended at the last transition (terminated or truncated)."""
    return self.terminated | self.truncated


class Env(abc.ABC):
  """Functional environment: `reset(key) -> EnvState`, `step(state, action) -> EnvState`.

  Actions live in [-1, 1]^action_size. Both methods are pure and jittable for the
  `brax/` and `dmc/` backends (`dmc_native/` is host-side; see `envs.native_dmc`).
  """

  name: str = ""
  observation_size: int = 0
  action_size: int = 0
  episode_length: int = 0
  jittable: bool = True

  @abc.abstractmethod
  def reset(self, key: jax.Array) -> EnvState:
    """key [2] uint32 -> EnvState of one fresh episode."""

  @abc.abstractmethod
  def step(self, state: EnvState, action: jax.Array) -> EnvState:
    """(EnvState, action [action_size] in [-1, 1]) -> next EnvState."""

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({self.name!r}, obs={self.observation_size}, "
            f"act={self.action_size}, episode_length={self.episode_length})")


class Wrapper(Env, abc.ABC):
  """An env built from another; forwards sizes and the name."""

  def __init__(self, env: Env):
    self.env = env
    self.name = env.name
    self.observation_size = env.observation_size
    self.action_size = env.action_size
    self.episode_length = env.episode_length
    self.jittable = env.jittable

  @property
  def unwrapped(self) -> Env:
    return getattr(self.env, "unwrapped", self.env)
