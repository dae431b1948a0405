"""dm_control's physics settings for MuJoCo Playground's DM Control ports (`dmc/`).

Playground edits each task's MuJoCo `<option>` so that MJX runs fast: 1-4 solver
iterations instead of dm_control's 100 (200 on finger), Euler instead of RK4 on
cartpole and acrobot, implicit joint damping (`eulerdamp`) disabled, caps on the
contacts MJX generates (`max_contact_points`, `max_geom_pairs` numeric fields), and on
finger, fish, pendulum and swimmer another physics timestep (the control timestep is
kept: the number of substeps changes). Issue 13 showed by ablation that these settings
alone move returns by up to 37% (`benchmarks.dmc_physics_ablation`).

`physics_overrides(task)` reads dm_control's own model of the task and returns the
Playground config keys to set (`sim_dt`), and `restore_options(mj_model, task)` copies
dm_control's options into Playground's `mj_model` before it is put into MJX. Nothing
here is a hand-written table: the values are dm_control's, read at `make` time, so
they follow the installed dm_control.
"""

from __future__ import annotations

import functools
import os

import mujoco
import numpy as np

# mjOption fields copied from dm_control's model (the solver and integrator; timestep
# goes through Playground's `sim_dt` so that its substep count follows).
OPTION_FIELDS = ("iterations", "ls_iterations", "tolerance", "ls_tolerance", "integrator",
                 "cone", "solver", "impratio", "noslip_iterations", "disableflags")
# Playground's MJX contact caps (numeric fields, -1 = no cap); dm_control has none.
CONTACT_CAPS = ("max_contact_points", "max_geom_pairs")
PHYSICS_MODES = ("dm_control", "playground")


def domain_task(task: str) -> tuple[str, str]:
  """`ball_in_cup_catch` -> ('ball_in_cup', 'catch'): dm_control's (domain, task)."""
  from envs.registry import _native_tasks  # pylint: disable=import-outside-toplevel
  return _native_tasks()[task]


@functools.lru_cache(maxsize=None)
def native_model(task: str) -> mujoco.MjModel:
  """dm_control's MuJoCo model of `task` (a copy, as its episode starts)."""
  os.environ.setdefault("MUJOCO_GL", "disable")
  from dm_control import suite  # pylint: disable=import-outside-toplevel
  domain, name = domain_task(task)
  env = suite.load(domain, name)
  env.reset()
  return env.physics.model.ptr.__copy__()


def physics_overrides(task: str) -> dict:
  """Playground config overrides for dm_control's physics: {'sim_dt': dm_control's timestep}."""
  return {"sim_dt": float(native_model(task).opt.timestep)}


def restore_options(mj_model: mujoco.MjModel, task: str) -> list[str]:
  """Sets `mj_model`'s solver/integrator options to dm_control's and removes the
  contact caps, in place. Returns the changes made, as 'field: old -> new' strings."""
  ref, changes = native_model(task).opt, []
  for field in OPTION_FIELDS:
    old, new = getattr(mj_model.opt, field), getattr(ref, field)
    if not np.allclose(old, new):
      changes.append(f"{field}: {old} -> {new}")
      setattr(mj_model.opt, field, new)
  for cap in CONTACT_CAPS:
    i = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_NUMERIC, cap)
    if i >= 0 and mj_model.numeric_data[mj_model.numeric_adr[i]] != -1:
      changes.append(f"{cap}: {mj_model.numeric_data[mj_model.numeric_adr[i]]:g} -> none")
      mj_model.numeric_data[mj_model.numeric_adr[i]] = -1
  return changes
