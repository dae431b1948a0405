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
MJX runs in float64 (`jax_enable_x64`), which separates float32 error from model error.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from benchmarks.dmc_common import linear_policy

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["cartpole_swingup"], "DMC tasks (domain_task), or 'all'.")
flags.DEFINE_list("fidelity", ["dm_control", "playground"], "dmc/ fidelity modes.")
flags.DEFINE_integer("episodes", 3, "Start states per task.")
flags.DEFINE_integer("steps", 1000, "Steps per trajectory.")
flags.DEFINE_float("tol", 1e-2, "Observation difference that counts as diverged.")
flags.DEFINE_bool("x64", False, "Run MJX in float64.")
flags.DEFINE_string("out", None, "Write rows to <out>.json (optional).")


def _native_rollout(native, policy, seed: int, steps: int):
  """dm_control episode: (start qpos, qvel, target [3] or None, actions, obs, rewards)."""
  state = native.reset(jax.random.PRNGKey(seed))
  physics = native.physics
  qpos, qvel = physics.data.qpos.copy(), physics.data.qvel.copy()
  target = None
  for kind in ("geom", "site"):
    names = [physics.model.id2name(i, kind) for i in range(getattr(physics.model, f"n{kind}"))]
    if "target" in names:
      target = getattr(physics.named.data, f"{kind}_xpos")["target"].copy()
      break
  acts, obs, rews = [], [], []
  for _ in range(steps):
    a = np.asarray(policy(jnp.asarray(state.obs), None))
    state = native.step(state, a)
    acts.append(a)
    obs.append(state.obs)
    rews.append(state.reward)
  return qpos, qvel, target, np.stack(acts), np.stack(obs), np.asarray(rews)


def _replay(env, qpos, qvel, target, actions):
  """dmc/ from the given start state under the given actions: (obs [T, o], rewards [T])."""
  # pylint: disable=import-outside-toplevel,protected-access
  from envs.playground import _sync
  base = env.unwrapped
  model = base.backend_env.mjx_model
  state = jax.jit(base.reset)(jax.random.PRNGKey(0))
  dtype = state.sim.data.qpos.dtype
  data = state.sim.data.replace(qpos=jnp.asarray(qpos, dtype), qvel=jnp.asarray(qvel, dtype))
  if target is not None and base.backend_env.mj_model.nmocap:
    data = data.replace(mocap_pos=data.mocap_pos.at[0].set(jnp.asarray(target, dtype)))
  data = jax.jit(_sync)(model, data)
  state = state.replace(sim=state.sim.replace(data=data))

  def body(s, a):
    s = base.step(s, a)
    return s, (s.obs, s.reward)

  _, (obs, rew) = jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, jnp.asarray(actions))
  return np.asarray(obs), np.asarray(rew)


def task_rows(task: str) -> list[dict]:
  """One row per fidelity mode (module doc); per-episode numbers in 'episodes'."""
  import envs  # pylint: disable=import-outside-toplevel
  native = envs.make(f"dmc_native/{task}")
  policy = jax.jit(linear_policy(native.observation_size, native.action_size))
  rollouts = [_native_rollout(native, policy, s, FLAGS.steps) for s in range(FLAGS.episodes)]
  rows = []
  for fidelity in FLAGS.fidelity:
    env = envs.make(f"dmc/{task}", fidelity=fidelity)
    eps = []
    t = time.time()
    for qpos, qvel, target, acts, n_obs, n_rew in rollouts:
      m_obs, m_rew = _replay(env, qpos, qvel, target, acts)
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
