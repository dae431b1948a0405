"""`dmc/` tasks: MuJoCo Playground's DM Control ports, corrected to behave as dm_control.

With `fidelity="dm_control"` (the default of `envs.make`), `PlaygroundEnv` corrects
what issue 13 found to differ from `dm_control.suite` in Playground 0.2.0's ports:

- Physics options (solver, integrator, timestep, contact caps) and fish's torso:
  `envs.dmc_physics`. The line search is capped at 10 iterations, which changes no
  replayed trajectory in float32 and saves 3-4x; `fidelity="dm_control_exact"` keeps
  dm_control's 50.
- Contacts on capsules (plane, sphere and capsule against capsule) as MuJoCo computes
  them, where MJX's differ: `envs.dmc_collision`.
- Stale observations and rewards. MJX's `mjx.step` computes kinematics and sensors
  *before* it integrates, so Playground's obs and reward after a step describe the state
  one physics substep earlier (a whole control step on acrobot, cartpole, cheetah,
  point_mass). dm_control ends every step with `mj_step1` (positions, velocities and
  their sensors at the new state). Here every Playground step is followed by the same
  stages: `fwd_position`, `sensor_pos`, `fwd_velocity`, `sensor_vel` (`mjx.forward` under
  `impl='warp'`). Dynamics are unchanged (the next step recomputes all of it); cost: one
  kinematics pass per control step.
- Initial states: dm_control's distributions where Playground's differ
  (`envs.dmc_resets`: cartpole, pendulum, ball_in_cup, finger, fish, humanoid).
- The first observation of finger_turn_*, fish_swim and swimmer_swimmer6, which
  Playground computes before it moves the target (mocap) into place: recomputed.
- Observation layouts: pendulum (`[zz, xz, ω]`, Playground swaps the first two), fish
  (`joint_angles, upright, target, velocity`; Playground puts `upright` first), walker
  (index 14 is the torso height, Playground puts the torso's zz there).

With `fidelity="playground"` the port runs as shipped, and `envs.make` warns that it
does not reproduce dm_control (`SHIPPED_DIFFERENCES`, by task). What remains with the
corrections (`RESIDUAL`, none of it seen in returns) is reported by
`envs.names(details=True)`.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
from mujoco import mjx

from envs import dmc_resets
from envs.dmc_collision import mujoco_capsules
from envs.backends import BackendEnv, to_env_state
from envs.types import EnvState

FIDELITY_MODES = ("dm_control", "dm_control_exact", "playground")

_PHYSICS = "solver iterations, eulerdamp off, contact caps"
_CAPSULES = ("MJX's contacts on capsules (friction directions on the floor; normals "
             "between capsules and spheres biased)")
_STALE = "obs and reward one physics substep stale"
# Playground 0.2.0's port as shipped against dm_control (issue 13; each corrected above).
SHIPPED_DIFFERENCES = {
    "acrobot": f"{_PHYSICS}, Euler instead of RK4; {_STALE} (a whole control step)",
    "ball_in_cup": f"{_PHYSICS}; {_CAPSULES}; every episode starts from the same state; "
                   f"{_STALE}",
    "cartpole": f"{_PHYSICS}, Euler instead of RK4; initial cart velocity = cart position "
                f"(swing-up) or tied to the pole angle (balance); {_STALE} (a control step)",
    "cheetah": f"{_PHYSICS}; {_CAPSULES}; {_STALE} (a control step)",
    "finger": f"{_PHYSICS}, implicitfast + pyramidal cone, timestep 0.005 (dm_control: Euler, "
              f"elliptic, 0.01); spinner angle tied to the finger's, no contact rejection "
              f"at reset; {_CAPSULES}; {_STALE}",
    "fish": f"{_PHYSICS}, timestep 0.002; torso 3.9x heavier (sphere geom); starts 0.1 "
            f"lower; obs order (upright first); {_STALE}",
    "hopper": f"{_PHYSICS}; {_CAPSULES}; {_STALE}",
    "humanoid": f"{_PHYSICS}; {_CAPSULES}; every episode starts standing upright; {_STALE}",
    "pendulum": f"{_PHYSICS}, timestep 0.01 x 2; initial angle U(0, pi); obs order "
                f"(xz, zz); {_STALE}",
    "point_mass": f"{_PHYSICS}; {_STALE} (a control step)",
    "swimmer": f"{_PHYSICS}, timestep 0.003 x 10 (dm_control 0.002 x 15); {_CAPSULES}; "
               f"{_STALE}",
    "walker": f"{_PHYSICS}; {_CAPSULES}; obs 'height' is the torso's zz orientation; "
              f"{_STALE}",
}
# What differs with fidelity='dm_control' (not seen in replayed trajectories or returns).
RESIDUAL = {
    "finger": "two decoration cylinders (on the proximal link and the spinner) have "
              "their contacts turned off, as Playground ships them",
    "humanoid": "touch sensors absent (dm_control does not observe them)",
}
# Tasks that still differ from dm_control at fidelity='dm_control' (make warns). None
# since MuJoCo's capsule contacts (issue 13: hopper's was the last).
NOT_REPRODUCED: dict[str, str] = {}
RESIDUAL_ALL = ("a NaN state terminates the episode (dm_control raises PhysicsError); "
                "the constraint solver stops at dm_control's tolerance at another iterate "
                "than MuJoCo's (rare substeps, up to 2e-4 relative in accelerations); "
                "MJX runs in float32, so chaotic tasks (contacts: cheetah, hopper, walker, "
                "humanoid) leave a replayed dm_control trajectory after 17-360 steps")


def domain(task: str) -> str:
  """'ball_in_cup_catch' -> 'ball_in_cup': the key of `SHIPPED_DIFFERENCES`/`RESIDUAL`."""
  return next(d for d in sorted(SHIPPED_DIFFERENCES, key=len, reverse=True)
              if task.startswith(d))


# Tasks whose reset sets the target (a mocap body) after `mjx.forward`.
_TARGET_SET_AFTER_FORWARD = ("finger_turn_easy", "finger_turn_hard", "fish_swim",
                             "swimmer_swimmer6")


def _sync(model, data):
  """dm_control's `mj_step1`: position and velocity stages and their sensors."""
  with mujoco_capsules():
    if model.impl.value != "jax":
      return mjx.forward(model, data)
    data = mjx.fwd_position(model, data)
    data = mjx.sensor_pos(model, data)
    data = mjx.fwd_velocity(model, data)
    return mjx.sensor_vel(model, data)


_after_step = _sync  # benchmarks/dmc_trajectories.py --nosync swaps it out (ablation)


@contextlib.contextmanager
def _as_dm_control():
  """While tracing a Playground reset/step: `mjx_env.step` ends with `_sync`, and
  capsule pairs collide as in MuJoCo (`envs.dmc_collision`).

  Playground's tasks call the module function `mjx_env.step`; it is swapped only for
  the duration of the call being traced and restored after, so nothing outside this
  module sees it (jit traces once, so the compiled step keeps the synced version).
  """
  from mujoco_playground._src import mjx_env  # pylint: disable=import-outside-toplevel
  shipped = mjx_env.step

  def step(model, data, action, n_substeps=1):
    return _after_step(model, shipped(model, data, action, n_substeps))

  mjx_env.step = step
  try:
    with mujoco_capsules():
      yield
  finally:
    mjx_env.step = shipped


def _walker_obs(env, obs, data):
  return obs.at[14].set(data.xpos[env._torso_id, 2])  # pylint: disable=protected-access


_FISH_ORDER = jnp.array([1, 2, 3, 4, 5, 6, 7, 0] + list(range(8, 24)))
# task -> obs(env, obs [o], data) -> obs [o] in dm_control's flattened order.
_OBS_LAYOUT = {
    "pendulum_swingup": lambda env, obs, data: obs[jnp.array([1, 0, 2])],
    "fish_swim": lambda env, obs, data: obs[_FISH_ORDER],
    "walker_run": _walker_obs,
    "walker_stand": _walker_obs,
    "walker_walk": _walker_obs,
}


class PlaygroundEnv(BackendEnv):
  """A Playground DM Control port, as shipped or corrected towards dm_control (module doc).

  `task` is dm_control's `domain_task`; `fidelity` one of `FIDELITY_MODES`.
  """

  def __init__(self, name: str, task: str, backend_env, episode_length: int,
               fidelity: str = "dm_control"):
    super().__init__(name, backend_env, episode_length)
    self.task = task
    self.fidelity = fidelity

  def _corrected(self, bstate):
    data, obs = bstate.data, bstate.obs
    layout = _OBS_LAYOUT.get(self.task)
    if layout is not None:
      obs = layout(self.backend_env, obs, data)
    return bstate.replace(obs=obs)

  def reset(self, key: jax.Array) -> EnvState:
    if self.fidelity == "playground":
      return super().reset(key)
    pg = self.backend_env
    draw = dmc_resets.RESETS.get(self.task)
    if draw is not None:
      key, key_dmc = jax.random.split(key)
    with _as_dm_control():
      bstate = pg.reset(key)
      if draw is not None or self.task in _TARGET_SET_AFTER_FORWARD:
        data = bstate.data
        if draw is not None:
          qpos, qvel = draw(key_dmc, pg.mj_model, data.qpos, pg.mjx_model, data)
          data = data.replace(qpos=qpos.astype(data.qpos.dtype),
                              qvel=qvel.astype(data.qvel.dtype))
          data = mjx.forward(pg.mjx_model, data)
        else:
          data = _sync(pg.mjx_model, data)
        bstate = bstate.replace(data=data, obs=pg._get_obs(data, bstate.info))  # pylint: disable=protected-access
    return to_env_state(self._corrected(bstate))

  def step(self, state: EnvState, action: jax.Array) -> EnvState:
    if self.fidelity == "playground":
      return super().step(state, action)
    with _as_dm_control():
      bstate = self.backend_env.step(state.sim, jnp.clip(action, -1.0, 1.0))
    return to_env_state(self._corrected(bstate))
