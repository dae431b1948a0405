r"""MJX against MuJoCo one physics substep at a time, from MuJoCo's own states (issue 13).

    python -m benchmarks.dmc_substeps --tasks=hopper_stand,humanoid_stand,walker_walk,cheetah_run
    python -m benchmarks.dmc_substeps --tasks=... --nomujoco_capsules   # MJX's own contacts

dm_control's model of each task runs in MuJoCo (C, float64) for --substeps physics
substeps from --seeds of dm_control's start states, under uniform random actions held
for a control step. Before every substep MuJoCo's state is put into MJX (float64, the
same model, MuJoCo's capsule contacts from `envs.dmc_collision` unless
--nomujoco_capsules), `mjx.forward` runs, and the accelerations are compared. A
difference here is a difference between the two engines' models of that state
(contacts, constraints), free of the chaos that separates whole trajectories
(`benchmarks.dmc_trajectories`): float64 rounding alone stays below 1e-9.

Per task: substeps with constraints active, the largest |qacc| difference relative to
max(1, |qacc|), the substeps over --tol, and, for those, the largest difference once
both constraint solvers run to tolerance 1e-15 (1000 iterations) from that state: where
this is at rounding level, the two engines pose the same constraint problem and differ
only in where their solvers stop at dm_control's tolerance.
"""

import os
import time

from absl import app, flags, logging
import numpy as np

flags.DEFINE_list("tasks", ["hopper_stand", "humanoid_stand"], "DMC tasks (domain_task).")
flags.DEFINE_integer("seeds", 3, "dm_control start states per task (seeds 0..n-1).")
flags.DEFINE_integer("substeps", 1000, "Physics substeps per start state.")
flags.DEFINE_float("tol", 1e-6, "Relative qacc difference that counts as a mismatch.")
flags.DEFINE_bool("mujoco_capsules", True, "Ablation switch: --nomujoco_capsules keeps "
                  "MJX's plane-, sphere- and capsule-capsule contacts.")
FLAGS = flags.FLAGS


def task_row(task: str) -> str:
  """Runs one task and returns its markdown table row."""
  # pylint: disable=import-outside-toplevel
  import contextlib
  import jax
  import mujoco
  from mujoco import mjx
  from dm_control import suite
  from envs.dmc_collision import mujoco_capsules
  from envs.registry import _native_tasks
  domain, name = _native_tasks()[task]
  patch = mujoco_capsules if FLAGS.mujoco_capsules else contextlib.nullcontext
  worst, over, constrained, total, t0 = 0.0, 0, 0, 0, time.time()
  worst_tight = 0.0

  def forward_fn(mx, dx):
    with patch():  # active while jit traces
      return mjx.forward(mx, dx)

  forward = jax.jit(forward_fn)  # one compiled forward per task, shared by its seeds
  for seed in range(FLAGS.seeds):
    env = suite.load(domain, name, task_kwargs={"random": seed})
    env.reset()
    m, substeps = env.physics.model.ptr, env.control_timestep() / env.physics.timestep()
    m.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_ENERGY)  # MJX lacks it; no dynamics
    try:
      mx = mjx.put_model(m)
    except NotImplementedError as e:
      return f"| {task} | MJX cannot load dm_control's model: {e} | | | | |"
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = env.physics.data.qpos, env.physics.data.qvel
    rng = np.random.default_rng(seed)
    for t in range(FLAGS.substeps):
      if t % round(substeps) == 0:
        d.ctrl[:] = rng.uniform(m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1])
      mujoco.mj_forward(m, d)
      dx = forward(mx, mjx.put_data(m, d))
      err = _rel(np.asarray(dx.qacc), d.qacc)
      worst, over = max(worst, err), over + int(err > FLAGS.tol)
      if err > FLAGS.tol:
        worst_tight = max(worst_tight, _tight_difference(m, mx, d, forward))
      constrained += int(d.nefc > 0)
      total += 1
      mujoco.mj_step(m, d)
  tight = f"{worst_tight:.1e}" if over else "-"
  return (f"| {task} | {constrained} / {total} | {worst:.1e} | {over} | {tight} | "
          f"{time.time() - t0:.0f} s |")


def _rel(qacc: np.ndarray, ref: np.ndarray) -> float:
  """max |qacc - ref| / max(1, |ref|) over dofs."""
  return float(np.max(np.abs(qacc - ref) / np.maximum(1.0, np.abs(ref))))


def _tight_difference(m, mx, d, forward) -> float:
  """Relative qacc difference of MuJoCo and MJX at `d`'s state, both solvers run to
  tolerance 1e-15 with 1000 iterations."""
  # pylint: disable=import-outside-toplevel
  import mujoco
  from mujoco import mjx
  saved = m.opt.tolerance, m.opt.iterations
  m.opt.tolerance, m.opt.iterations = 1e-15, 1000
  try:
    tight = mujoco.MjData(m)
    tight.qpos[:], tight.qvel[:], tight.ctrl[:] = d.qpos, d.qvel, d.ctrl
    tight.qacc_warmstart[:] = d.qacc_warmstart
    mujoco.mj_forward(m, tight)
    mxt = mx.replace(opt=mx.opt.replace(tolerance=1e-15, iterations=1000, ls_iterations=1000))
    qacc = np.asarray(forward(mxt, mjx.put_data(m, d)).qacc)
  finally:
    m.opt.tolerance, m.opt.iterations = saved
  return _rel(qacc, tight.qacc)


def main(_):
  import jax  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_enable_x64", True)
  os.environ.setdefault("MUJOCO_GL", "disable")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)
  print(f"MuJoCo's capsule contacts in MJX: {FLAGS.mujoco_capsules}\n"
        f"| task | substeps with constraints | max rel. qacc difference | substeps > "
        f"{FLAGS.tol:g} | max rel. difference there, solvers run to 1e-15 | time |\n"
        "|---|---|---|---|---|---|")
  for task in FLAGS.tasks:
    print(task_row(task), flush=True)


if __name__ == "__main__":
  app.run(main)
