r"""dmc/ (MJX via Playground) against dmc_native/ (dm_control): returns, task by task.

    python -m benchmarks.dmc_parity --tasks=all --episodes=100 --out=benchmarks/figures/dmc_parity
    python -m benchmarks.dmc_parity --tasks=cartpole_swingup --workdirs=runs/sac_cartpole_swingup
    python -m benchmarks.dmc_parity --obs_table   # every dmc/ task, first-step check

Returns: one policy runs --episodes episodes on dmc/ (for each --fidelity: 'dm_control',
the corrected default of `envs.make`, and 'playground', the port as shipped) and on
dmc_native/, each from its own random initial states. The policy is the fixed linear
feedback tanh(0.3 · obs @ G), G ~ N(0, 1) from PRNGKey(0), or, for a task with a
training run in --workdirs (`experiments.train` on dmc/<task>), seed 0 of its last
checkpoint, deterministic. Each row: means ± SE, the gap in % of the native mean and in
SE of the difference, the verdict `match` when |gap| ≤ 2% or ≤ 2 SE (issue 13's
target), else `DIFFERS`, and dmc/'s env steps per second (the episodes vmapped on this
machine, compile excluded). With --out, rows go to <out>.json and a plot to <out>.png.

--obs_table copies the native initial physics state (qpos, qvel) into dm/ (corrected),
applies one zero action on both and reports the largest observation difference and the
indices that differ by more than 1e-2.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

import envs
from envs.dmc_compare import linear_policy

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["cartpole_balance"], "DMC tasks (domain_task), or 'all'.")
flags.DEFINE_integer("episodes", 50, "Episodes per backend.")
flags.DEFINE_list("fidelity", ["dm_control", "playground"], "dmc/ fidelity modes compared.")
flags.DEFINE_list("workdirs", [], "experiments.train workdirs on dmc/<task>: their policy "
                  "replaces the linear one on that task.")
flags.DEFINE_integer("chunk", 0, "Run dmc/ episodes in vmapped chunks of this many (0: all "
                     "at once). humanoid needs it on CPU: 50 humanoid episodes vmapped "
                     "deadlock in XLA's CPU runtime after compiling (jax 0.10.2; 16 run).")
flags.DEFINE_string("out", None, "Output prefix for .json and .png (optional).")
flags.DEFINE_bool("obs_table", False, "Also check first-step observations on every dmc/ task.")

TOLERANCE_PCT, TOLERANCE_SE = 2.0, 2.0  # issue 13's target: within 2% or 2 SE


def compare(mean_a: float, se_a: float, mean_b: float, se_b: float) -> dict:
  """Gap of a against reference b: absolute, % of |b|, in SE of the difference, and the
  verdict 'match' when |gap| ≤ 2% or ≤ 2 SE, else 'DIFFERS'."""
  gap, se = mean_a - mean_b, float(np.hypot(se_a, se_b))
  pct = 100 * gap / abs(mean_b) if mean_b else float(np.copysign(np.inf, gap)) if gap else 0.0
  gap_se = abs(gap) / se if se > 0 else (0.0 if gap == 0 else float("inf"))
  ok = abs(pct) <= TOLERANCE_PCT or gap_se <= TOLERANCE_SE
  return {"gap": gap, "gap_pct": pct, "gap_se": gap_se, "verdict": "match" if ok else "DIFFERS"}


def _trained_policy(task: str, workdir: str):
  """Seed 0 of `workdir`'s last checkpoint, deterministic: (obs, key) -> action."""
  from experiments import runner  # pylint: disable=import-outside-toplevel
  state = runner.load_state(workdir)
  _, run_env, agent = runner.build(runner.RunSpec(**runner.read_spec(workdir)))
  if run_env.name != f"dmc/{task}":
    raise SystemExit(f"error: {workdir} trained {run_env.name}, not dmc/{task}")
  params = agent.policy_params(jax.tree.map(lambda x: x[0], state))
  return agent.make_policy(params, True)


def _stats(r: np.ndarray) -> tuple[float, float]:
  return float(r.mean()), float(r.std(ddof=1) / np.sqrt(len(r)))


def task_rows(task: str, workdir: str | None, episodes: int) -> list[dict]:
  """Returns one row per fidelity mode for `task` (see module doc)."""
  native = envs.make(f"dmc_native/{task}")
  if workdir:
    policy, what = _trained_policy(task, workdir), f"trained ({workdir})"
  else:
    policy, what = linear_policy(native.observation_size, native.action_size), "linear"
  t = time.time()
  r_nat = envs.native_episode_returns(native, jax.jit(policy), jax.random.PRNGKey(2), episodes)
  nat_s = time.time() - t
  rows = []
  for fidelity in FLAGS.fidelity:
    env = envs.make(f"dmc/{task}", fidelity=fidelity)
    key = jax.random.PRNGKey(1)
    chunk = FLAGS.chunk if 0 < FLAGS.chunk < episodes else episodes
    if episodes % chunk:
      raise ValueError(f"--episodes={episodes} is not a multiple of --chunk={chunk}")
    keys = [key] if chunk == episodes else list(jax.random.split(key, episodes // chunk))
    run = jax.jit(lambda k, env=env: envs.episode_returns(env, policy, k, chunk))
    run = run.lower(key).compile()
    t = time.time()
    r = np.concatenate([np.asarray(run(k)) for k in keys])
    seconds = time.time() - t
    row = {"task": task, "policy": what, "fidelity": fidelity, "episodes": episodes,
           "dmc": _stats(r), "native": _stats(r_nat), "dmc_seconds": seconds,
           "dmc_steps_per_s": episodes * env.episode_length / seconds,
           "native_steps_per_s": episodes * native.episode_length / nat_s}
    row.update(compare(*row["dmc"], *row["native"]))
    rows.append(row)
    print(f"| {task} | {what} | {fidelity} | {row['dmc'][0]:.1f} ± {row['dmc'][1]:.1f} "
          f"| {row['native'][0]:.1f} ± {row['native'][1]:.1f} | {row['gap_pct']:+.1f}% "
          f"| {row['gap_se']:.1f} | {row['verdict']} | {row['dmc_steps_per_s']:.0f} |", flush=True)
  return rows


def plot(rows: list[dict], path: str) -> None:
  """Gap in % per task and fidelity mode (bars), with the ±2% band."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  labels = sorted({(r["task"], r["policy"].split(" ")[0]) for r in rows})
  modes = list(dict.fromkeys(r["fidelity"] for r in rows))
  fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels)), 4))
  width = 0.8 / len(modes)
  for j, mode in enumerate(modes):
    pct = []
    for task, pol in labels:
      hit = [r for r in rows if (r["task"], r["policy"].split(" ")[0]) == (task, pol)
             and r["fidelity"] == mode]
      pct.append(np.clip(hit[0]["gap_pct"], -100, 100) if hit else np.nan)
    ax.bar(np.arange(len(labels)) + j * width, pct, width, label=f"dmc/ {mode}")
  ax.axhspan(-TOLERANCE_PCT, TOLERANCE_PCT, color="green", alpha=0.2, label="±2%")
  ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2)
  ax.set_xticklabels([f"{t} ({p})" for t, p in labels], rotation=75, fontsize=7)
  ax.set_ylabel("return gap vs dm_control, % (clipped ±100)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def obs_row(task: str) -> None:
  """First-step observation check from a copied native state (module doc)."""
  native = envs.make(f"dmc_native/{task}")
  base = envs.make(f"dmc/{task}").unwrapped
  ns, ms = native.reset(jax.random.PRNGKey(0)), jax.jit(base.reset)(jax.random.PRNGKey(0))
  data = ms.sim.data.replace(qpos=jnp.asarray(native.physics.data.qpos, jnp.float32),
                             qvel=jnp.asarray(native.physics.data.qvel, jnp.float32))
  ms = ms.replace(sim=ms.sim.replace(data=data))
  a = np.zeros(native.action_size, np.float32)
  ns, ms = native.step(ns, a), jax.jit(base.step)(ms, jnp.asarray(a))
  diff = np.abs(ns.obs - np.asarray(ms.obs))
  bad = np.flatnonzero(diff > 1e-2)
  print(f"| {task} | {native.observation_size} | {diff.max():.4f} | "
        f"{', '.join(map(str, bad)) if bad.size else 'none'} |", flush=True)


def main(_):
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)
  tasks = ([n.split("/", 1)[1] for n in envs.names("dmc")] if FLAGS.tasks == ["all"]
           else FLAGS.tasks)
  workdirs = {}
  for wd in FLAGS.workdirs:
    from experiments import runner  # pylint: disable=import-outside-toplevel
    workdirs[runner.read_spec(wd)["env"].split("/", 1)[1]] = wd
  print("| task | policy | dmc/ fidelity | dmc/ return ± SE | dmc_native/ return ± SE "
        "| gap | gap / SE | verdict | dmc/ steps/s |\n|---|---|---|---|---|---|---|---|---|")
  rows = []
  for task in tasks:
    rows += task_rows(task, None, FLAGS.episodes)
    if task in workdirs:
      rows += task_rows(task, workdirs[task], FLAGS.episodes)
    if FLAGS.out:
      with open(FLAGS.out + ".json", "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
  if FLAGS.out:
    plot(rows, FLAGS.out + ".png")
  if FLAGS.obs_table:
    print("\n| task | obs size | max first-step obs diff | indices > 1e-2 |\n|---|---|---|---|")
    for name in envs.names("dmc"):
      obs_row(name.split("/", 1)[1])


if __name__ == "__main__":
  app.run(main)
