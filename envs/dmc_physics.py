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

# mjOption fields copied from dm_control's model (the solver and integrator; timestep
# goes through Playground's `sim_dt` so that its substep count follows).
OPTION_FIELDS = ("iterations", "ls_iterations", "tolerance", "ls_tolerance", "integrator",
                 "cone", "solver", "impratio", "noslip_iterations", "disableflags")
# Line-search iterations per solver iteration outside the exact mode. dm_control's
# tolerance (1e-8, times ls_tolerance 0.01 for the line search) is out of float32's reach,
# so MJX's line search runs all of dm_control's 50 iterations on every solver iteration,
# which is most of the cost (cartpole 4x, cheetah 3x slower than with 10), while dm_control
# trajectories replayed with 10 agree to float32 precision as long as with 50
# (issue 13, `benchmarks.dmc_trajectories --fidelity=dm_control,dm_control_exact`).
LS_ITERATIONS_CAP = 10
# Playground's MJX contact caps (numeric fields, -1 = no cap); dm_control has none.
CONTACT_CAPS = ("max_contact_points", "max_geom_pairs")
# Bodies whose inertia Playground changed, restored from dm_control's model by name.
# fish: the torso's geom `torso_massive` is a box 0.002 x 0.06 x 0.03 in dm_control and a
# sphere r = 0.03 in Playground (MJX has no ellipsoid-box collision), which makes the
# torso 3.93x heavier and, through the inertia-box fluid model (which uses only the
# body's mass and inertia), its forward drag area 9x larger. Contacts are disabled in
# fish, so the geom's shape has no other effect; the body's mass and inertia are restored.
MODEL_EDITS = {"fish_swim": ("torso",)}
_BODY_FIELDS = ("body_mass", "body_inertia", "body_ipos", "body_iquat")


@functools.lru_cache(maxsize=None)
def native_model(task: str) -> mujoco.MjModel:
  """dm_control's MuJoCo model of `task` (a copy, as its episode starts)."""
  os.environ.setdefault("MUJOCO_GL", "disable")
  from dm_control import suite  # pylint: disable=import-outside-toplevel
  from envs.registry import _native_tasks  # pylint: disable=import-outside-toplevel
  domain, name = _native_tasks()[task]
  env = suite.load(domain, name)
  env.reset()
  return env.physics.model.ptr.__copy__()


def physics_overrides(task: str) -> dict:
  """Playground config overrides for dm_control's physics: {'sim_dt': dm_control's timestep}."""
  return {"sim_dt": float(native_model(task).opt.timestep)}


def restore_options(mj_model: mujoco.MjModel, task: str, exact: bool = False) -> None:
  """Sets `mj_model`'s solver/integrator options to dm_control's (line search capped at
  `LS_ITERATIONS_CAP` unless `exact`), removes the contact caps and restores the bodies
  in `MODEL_EDITS`, in place."""
  ref = native_model(task)
  for field in OPTION_FIELDS:
    setattr(mj_model.opt, field, getattr(ref.opt, field))
  if not exact:
    mj_model.opt.ls_iterations = min(mj_model.opt.ls_iterations, LS_ITERATIONS_CAP)
  for cap in CONTACT_CAPS:
    i = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_NUMERIC, cap)
    if i >= 0:
      mj_model.numeric_data[mj_model.numeric_adr[i]] = -1
  edits = MODEL_EDITS.get(task, ())
  for name in edits:
    src, dst = ref.body(name).id, mj_model.body(name).id
    for field in _BODY_FIELDS:
      getattr(mj_model, field)[dst] = getattr(ref, field)[src]
  if edits:
    mujoco.mj_setConst(mj_model, mujoco.MjData(mj_model))
