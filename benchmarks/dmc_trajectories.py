r"""dmc/ against dm_control on whole trajectories: the same start state, the same actions.

    python -m benchmarks.dmc_trajectories --tasks=all --out=benchmarks/figures/dmc_trajectories
    python -m benchmarks.dmc_trajectories --tasks=all --x64 --fidelity=dm_control   # MJX in float64

For each task and episode (--episodes, seeds 0..n−1): dm_control (`dmc_native/`) is reset
and run for --steps steps under the fixed linear policy of `benchmarks.dmc_parity`; its
start state (qpos, qvel and the target, for tasks with one) is copied into dmc/ (per
--fidelity), which then replays the same actions open loop. Reported per task: the largest
observation difference after the first step (obs and reward *code* agree when this is at
float precision), the first step at which any observation differs by more than --tol
(how long the *physics* agree; chaotic tasks diverge at last whatever the precision), the
relative reward difference summed over the first 10 steps, and the two returns. With --x64,
MJX runs in float64 (`jax_enable_x64`), which separates float32 error from model error;
--nosync ablates the re-sync of observations after each step (`envs.playground`).
"""

import json
import time

import jax
import numpy as np
from absl import app, flags, logging

from envs.dmc_compare import linear_policy

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["cartpole_swingup"], "DMC tasks (domain_task), or 'all'.")
flags.DEFINE_list("fidelity", ["dm_control", "playground"], "dmc/ fidelity modes.")
flags.DEFINE_integer("episodes", 3, "Start states per task.")
flags.DEFINE_integer("steps", 1000, "Steps per trajectory.")
flags.DEFINE_float("tol", 1e-2, "Observation difference that counts as diverged.")
flags.DEFINE_bool("x64", False, "Run MJX in float64.")
flags.DEFINE_bool("sync", True, "Ablation switch: --nosync leaves Playground's observations "
                  "one physics substep stale (no mj_step1-like re-sync after each step).")
flags.DEFINE_bool("mujoco_capsules", True, "Ablation switch: --nomujoco_capsules keeps MJX's "
                  "plane-, sphere- and capsule-capsule contacts (envs.dmc_collision).")
flags.DEFINE_string("out", None, "Write rows to <out>.json (optional).")


def task_rows(task: str) -> list[dict]:
  """One row per fidelity mode (module doc); per-episode numbers in 'episodes'."""
  import envs  # pylint: disable=import-outside-toplevel
  from envs import dmc_compare  # pylint: disable=import-outside-toplevel
  native = envs.make(f"dmc_native/{task}")
  policy = jax.jit(linear_policy(native.observation_size, native.action_size))
  rollouts = [dmc_compare.native_rollout(native, policy, s, FLAGS.steps)
              for s in range(FLAGS.episodes)]
  rows = []
  for fidelity in FLAGS.fidelity:
    env = envs.make(f"dmc/{task}", fidelity=fidelity)
    eps = []
    t = time.time()
    for rollout in rollouts:
      n_obs, n_rew = rollout.obs, rollout.rewards
      m_obs, m_rew = dmc_compare.replay(env, rollout)
      diff = np.abs(m_obs - n_obs).max(axis=1)
      over = np.flatnonzero(diff > FLAGS.tol)
      eps.append({"first_obs_diff": float(diff[0]),
                  "first_obs_idx": np.flatnonzero(np.abs(m_obs[0] - n_obs[0]) > 1e-4).tolist(),
                  "agree_steps": int(over[0]) if over.size else len(diff),
                  "reward10_rel": float(abs(m_rew[:10].sum() - n_rew[:10].sum())
                                        / max(abs(n_rew[:10].sum()), 1e-6)),
                  "return_native": float(n_rew.sum()), "return_dmc": float(m_rew.sum())})
    row = {"task": task, "fidelity": fidelity, "x64": FLAGS.x64, "episodes": eps,
           "seconds": time.time() - t}
    rows.append(row)
    agree = [e["agree_steps"] for e in eps]
    idx = sorted({i for e in eps for i in e["first_obs_idx"]})
    print(f"| {task} | {fidelity} | {'f64' if FLAGS.x64 else 'f32'} "
          f"| {max(e['first_obs_diff'] for e in eps):.1e} | {idx if idx else '-'} "
          f"| {min(agree)}-{max(agree)} | {max(e['reward10_rel'] for e in eps):.1e} "
          f"| {np.mean([e['return_native'] for e in eps]):.1f} "
          f"| {np.mean([e['return_dmc'] for e in eps]):.1f} |", flush=True)
  return rows


def main(_):
  if FLAGS.x64:
    jax.config.update("jax_enable_x64", True)
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)
  import envs  # pylint: disable=import-outside-toplevel
  if not FLAGS.sync:
    from envs import playground  # pylint: disable=import-outside-toplevel
    playground._after_step = lambda model, data: data  # pylint: disable=protected-access
  if not FLAGS.mujoco_capsules:
    from mujoco.mjx._src import collision_primitive  # pylint: disable=import-outside-toplevel
    from envs import dmc_collision  # pylint: disable=import-outside-toplevel
    for name in ("plane_capsule", "sphere_capsule", "capsule_capsule"):
      setattr(dmc_collision, name, getattr(collision_primitive, name))
  tasks = ([n.split("/", 1)[1] for n in envs.names("dmc")] if FLAGS.tasks == ["all"]
           else FLAGS.tasks)
  print(f"| task | dmc/ fidelity | MJX precision | max obs diff after step 1 | obs indices "
        f"> 1e-4 after step 1 | steps until obs differ > {FLAGS.tol:g} | reward diff, "
        f"first 10 steps (rel.) | native return | dmc/ return (open loop) |\n"
        "|---|---|---|---|---|---|---|---|---|")
  rows = []
  for task in tasks:
    rows += task_rows(task)
    if FLAGS.out:
      with open(FLAGS.out + ".json", "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
  app.run(main)
