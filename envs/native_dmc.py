"""`dmc_native/<task>`: the DeepMind Control Suite through host-side `dm_control`.

For parity checks and evaluation only: it has the `Env` method signatures but keeps
the physics inside the `dm_control` environment object, so it is neither pure nor
jittable (`jittable = False`), and one instance runs one episode at a time. Arrays
are numpy. The time limit is ours (`episode_length` steps, truncation), not
dm_control's, so both DMC backends cut episodes the same way.
"""

from __future__ import annotations

import os

import numpy as np

from envs.types import Env, EnvState


def flatten_observation(obs) -> np.ndarray:
  """dm_control's ordered observation dict -> [obs_size] float32 (dict order)."""
  return np.concatenate([np.asarray(v, np.float32).ravel() for v in obs.values()])


class NativeDMCEnv(Env):
  """One `dm_control.suite` task; `reset(key)` seeds the task's RNG from the key."""

  jittable = False

  def __init__(self, name: str, domain: str, task: str, episode_length: int):
    # No rendering is needed here; without this dm_control probes for a display (GLFW).
    # A user who sets MUJOCO_GL keeps their choice.
    os.environ.setdefault("MUJOCO_GL", "disable")
    from dm_control import suite  # pylint: disable=import-outside-toplevel
    self.name = name
    self._env = suite.load(domain, task, task_kwargs={"time_limit": float("inf")})
    spec = self._env.action_spec()
    self._low, self._high = spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)
    self.action_size = int(spec.shape[0])
    obs_spec = self._env.observation_spec()
    self.observation_size = int(sum(int(np.prod(v.shape)) for v in obs_spec.values()))
    self.episode_length = int(episode_length)
    self.control_timestep = float(self._env.control_timestep())

  @property
  def physics(self):
    """The live `dm_control` Physics (for parity checks that copy states)."""
    return self._env.physics

  def reset(self, key) -> EnvState:
    seed = int(np.asarray(key, np.uint32).ravel()[-1])
    self._env.task.random.seed(seed)
    ts = self._env.reset()
    obs = flatten_observation(ts.observation)
    return EnvState(obs=obs, reward=np.float32(0.0), terminated=np.bool_(False),
                    truncated=np.bool_(False),
                    info={"steps": 0, "episode_return": np.float32(0.0), "final_obs": obs})

  def step(self, state: EnvState, action) -> EnvState:
    if bool(state.terminated) or bool(state.truncated):
      raise RuntimeError(f"{self.name}: step() after the episode ended; call reset()")
    action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
    ts = self._env.step(self._low + (action + 1.0) * 0.5 * (self._high - self._low))
    obs = flatten_observation(ts.observation)
    reward = np.float32(ts.reward or 0.0)
    steps = state.info["steps"] + 1
    terminated = bool(ts.last() and ts.discount == 0.0)
    truncated = (not terminated) and steps >= self.episode_length
    return EnvState(obs=obs, reward=reward, terminated=np.bool_(terminated),
                    truncated=np.bool_(truncated),
                    info={"steps": steps, "episode_return": state.info["episode_return"] + reward,
                          "final_obs": obs})
