r"""Where an MJX physics substep of a dmc/ task spends its time, stage by stage.

    python -m benchmarks.mjx_stages --tasks=swimmer_swimmer6,cheetah_run,fish_swim

For each task: the corrected env's MJX model (`envs.make("dmc/<task>")`), --batch copies
of its initial state vmapped, and each stage of `mjx.step` jitted on its own and timed
over --reps calls (ms per call, after compilation). Stages overlap (`fwd_position`
contains kinematics ... make_constraint), so the rows do not add up to `step`.
"""

import time

from absl import app, flags, logging

flags.DEFINE_list("tasks", ["swimmer_swimmer6", "cheetah_run"], "DMC tasks (domain_task).")
flags.DEFINE_integer("batch", 16, "States vmapped per call.")
flags.DEFINE_integer("reps", 20, "Timed calls per stage.")
FLAGS = flags.FLAGS


def stages():
  """name -> fn(model, data) -> anything, the stages of `mjx.step` (MJX 3.3)."""
  # pylint: disable=import-outside-toplevel
  from mujoco import mjx
  from mujoco.mjx._src import collision_driver, constraint, passive, smooth, solver
  return {
      "step": mjx.step,
      "fwd_position": mjx.fwd_position,
      "  kinematics": smooth.kinematics,
      "  com_pos": smooth.com_pos,
      "  crb": smooth.crb,
      "  factor_m": smooth.factor_m,
      "  collision": collision_driver.collision,
      "  make_constraint": constraint.make_constraint,
      "fwd_velocity": mjx.fwd_velocity,
      "passive (incl. fluid)": passive.passive,
      "fwd_acceleration": mjx.fwd_acceleration,
      "solve": solver.solve,
  }


def main(_):
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  from mujoco import mjx
  import envs
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)
  for task in FLAGS.tasks:
    model = envs.make(f"dmc/{task}").unwrapped.backend_env.mjx_model
    data = mjx.forward(model, mjx.make_data(model))
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x] * FLAGS.batch), data)
    print(f"\n{task}: nbody {model.nbody}, nv {model.nv}, timestep {model.opt.timestep}, "
          f"{FLAGS.batch} states vmapped\n| stage | ms per call |\n|---|---|")
    for name, fn in stages().items():
      call = jax.jit(jax.vmap(lambda d, fn=fn: fn(model, d)))
      jax.block_until_ready(call(batch))
      t = time.time()
      for _ in range(FLAGS.reps):
        out = call(batch)
      jax.block_until_ready(out)
      print(f"| {name} | {(time.time() - t) / FLAGS.reps * 1e3:.2f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
