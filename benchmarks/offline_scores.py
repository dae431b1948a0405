r"""Offline RL benchmark: normalised scores of every agent x dataset level x env, 5 seeds.

    python -m benchmarks.offline_scores --datasets=brax/hopper:runs/datasets/hopper \
        --runs=runs/offline --agents=td3_bc,iql,prdc,a2pr --grad_steps=100000

`--datasets` pairs an env with a directory of `experiments.make_dataset` (levels
random.npz, medium.npz, ... with reference returns in their metadata). For each env,
level and agent it trains (or resumes, or reads when finished) the run
<runs>/<env>/<level>/<agent> through `experiments.runner` with `--num_seeds` vmapped
seeds and `--grad_steps` gradient steps, evaluated on episodes of the level's horizon
(its reference returns are returns of such episodes), then reports each run's final D4RL-normalised
score 100·(R − R_random)/(R_expert − R_random) over seeds as rliable's IQM with a 95%
bootstrap CI, and the datasets' TQ and SACo (evaluation/dataset_measures.py; SACo's
reference is the env's medium-replay level), transitions and size on disk. Prints
markdown tables and writes <runs>/offline_scores.json. `--report_only` reads finished
runs and trains nothing; missing runs, and runs evaluated at another episode length, are
named and skipped.

With --d3rlpy_python, d3rlpy 2.8.1's TD3+BC and IQL (benchmarks/d3rlpy_side.py, in its
own virtualenv) also train `--grad_steps` steps per seed on --d3rlpy_levels; their
actors are exported and evaluated here on the same env (--eval_episodes episodes per
seed), reported as extra columns d3rlpy_td3_bc, d3rlpy_iql.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
from absl import app, flags, logging

from benchmarks.d3rlpy_side import jax_policy
from envs.registry import DEFAULT_EPISODE_LENGTH
from evaluation import data as data_lib
from evaluation import dataset_measures
from experiments import runner
from experiments.aggregate import iqm_ci

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", [], "env:directory pairs of make_dataset outputs.")
flags.DEFINE_string("runs", "runs/offline", "Directory of the training runs.")
flags.DEFINE_list("agents", ["td3_bc", "iql", "prdc", "a2pr"],
                  "Offline agents; NAME+rw: the agent with trajectory weighting "
                  "(sampler=return_weighted).")
flags.DEFINE_list("levels", ["random", "medium", "medium-replay", "medium-expert", "expert"],
                  "Dataset levels.")
flags.DEFINE_integer("num_seeds", 5, "Seeds per run (vmapped).")
flags.DEFINE_integer("grad_steps", 100_000, "Gradient steps per seed.")
flags.DEFINE_integer("num_evals", 10, "Evaluations per run.")
flags.DEFINE_integer("eval_episodes", 10, "Episodes per evaluation.")
flags.DEFINE_multi_string("override", [], "Agent config override, key=value for every run, "
                          "AGENT:key=value for one agent's (e.g. prdc:alpha=40, the PRDC "
                          "README's HalfCheetah setting).")
flags.DEFINE_bool("report_only", False, "Only summarise finished runs.")
flags.DEFINE_string("d3rlpy_python", None, "Python of a virtualenv with d3rlpy 2.8.1: also "
                    "train its TD3+BC and IQL (benchmarks/d3rlpy_side.py) on --d3rlpy_levels.")
flags.DEFINE_list("d3rlpy_agents", ["td3_bc", "iql"], "d3rlpy's algorithms compared.")
flags.DEFINE_list("d3rlpy_levels", ["medium", "medium-replay"], "Levels d3rlpy runs on.")
flags.DEFINE_integer("d3rlpy_threads", None, "torch threads per d3rlpy process (default: "
                     "torch's, every core); 1 when other jobs share the cores, where "
                     "torch's threads wait on each other.", lower_bound=1)


def dataset_row(env: str, directory: str, level: str, reference) -> dict:
  """TQ, SACo (vs `reference`, the env's medium-replay), transitions, size on disk and
  horizon of one level."""
  path = os.path.join(directory, level)
  data = data_lib.load(path)
  refs = data.metadata["reference_returns"]
  return {"env": env, "level": level, "horizon": data.horizon,
          "transitions": int(np.asarray(data_lib.valid_mask(data.terminated, data.truncated)).sum()),
          "megabytes": os.path.getsize(path + ".npz") / 2 ** 20,
          "tq": dataset_measures.trajectory_quality(data, refs["random"], refs["expert"]),
          "saco": dataset_measures.saco(data, reference)}


def overrides_for(agent: str) -> list[str]:
  """--override entries that apply to `agent`: key=value, or AGENT:key=value for it."""
  out = []
  for o in FLAGS.override:
    who, sep, rest = o.partition(":")
    if not sep or "=" in who:
      out.append(o)
    elif who == agent:
      out.append(rest)
  return out


def run_dir(env: str, level: str, agent: str) -> str:
  return os.path.join(FLAGS.runs, env.replace("/", "_"), level, agent)


def d3rlpy_scores(env_name: str, env_args: tuple, directory: str, level: str, algo: str):
  """Normalised final scores [seeds] of d3rlpy's `algo` trained on the level (one
  d3rlpy_side.py process per seed, kept as <run>/seed_K.npz so that a re-run resumes),
  each actor evaluated here on --eval_episodes episodes; None if a seed is missing under
  --report_only."""
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import envs
  from experiments.agents import parse_overrides
  side = os.path.join(os.path.dirname(os.path.abspath(__file__)), "d3rlpy_side.py")
  dataset = os.path.abspath(os.path.join(directory, level))
  refs = data_lib.load(dataset).metadata["reference_returns"]
  # the env exactly as our runs make it (RunSpec adds a dmc/ task's fidelity)
  spec = runner.RunSpec(agent="td3_bc", env=env_name, num_seeds=1, total_steps=1, env_args=env_args)
  env = envs.make(spec.env, **parse_overrides(list(spec.env_args), {}, "--env_arg"))
  out_dir = run_dir(env_name, level, "d3rlpy_" + algo)
  os.makedirs(out_dir, exist_ok=True)
  scores = []
  for seed in range(FLAGS.num_seeds):
    path = os.path.join(out_dir, f"seed_{seed}.npz")
    if not os.path.exists(path):
      if FLAGS.report_only:
        return None
      print(f"d3rlpy {algo} {env_name} {level} seed {seed}", flush=True)
      done = subprocess.run([FLAGS.d3rlpy_python, side, "--mode=train", f"--algo={algo}",
                             f"--dataset={dataset}", f"--steps={FLAGS.grad_steps}",
                             f"--seed={seed}", f"--out={path}.tmp.npz"]
                            + ([f"--threads={FLAGS.d3rlpy_threads}"] if FLAGS.d3rlpy_threads else []),
                            capture_output=True, text=True, check=False)
      if done.returncode:
        raise SystemExit(f"error: d3rlpy_side.py failed:\n{done.stderr[-3000:]}")
      os.replace(path + ".tmp.npz", path)
    with np.load(path) as f:
      policy = jax_policy({k: f[k] for k in f.files})
    ret = float(jnp.mean(jax.jit(lambda k, p=policy: envs.episode_returns(
        env, p, k, FLAGS.eval_episodes))(jax.random.PRNGKey(1000 + seed))))
    scores.append(100.0 * (ret - refs["random"]) / (refs["expert"] - refs["random"]))
  return np.asarray(scores)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  pairs = [p.split(":", 1) for p in FLAGS.datasets]
  if not pairs or any(len(p) != 2 for p in pairs):
    raise SystemExit("error: --datasets takes env:directory pairs, e.g. brax/hopper:runs/datasets/hopper")
  results, measures = [], []
  for env, directory in pairs:
    reference = data_lib.load(os.path.join(directory, "medium-replay"))   # SACo's, loaded once
    for level in FLAGS.levels:
      if not os.path.exists(os.path.join(directory, level + ".npz")):
        print(f"missing dataset {directory}/{level}: skipped")
        continue
      measures.append(dataset_row(env, directory, level, reference))
      # a level's reference returns are returns of episodes of its horizon: evaluate at
      # that length too (no argument at the env's default, as runs before this stored it)
      horizon = measures[-1]["horizon"]
      env_args = () if horizon == DEFAULT_EPISODE_LENGTH else (f"episode_length={horizon}",)
      for agent in FLAGS.agents:
        workdir = run_dir(env, level, agent)
        summary_path = os.path.join(workdir, "summary.json")
        if FLAGS.report_only:
          if not os.path.exists(summary_path):
            print(f"missing run {workdir}: skipped")
            continue
          stored = tuple(runner.read_spec(workdir).get("env_args", ()))
          expected = runner.RunSpec(agent=agent.partition("+")[0], env=env, num_seeds=1,
                                    total_steps=1, env_args=env_args).env_args
          if stored != expected:
            print(f"run {workdir} evaluated with env_args {list(stored)}, not "
                  f"{list(env_args)} (the dataset's horizon): skipped")
            continue
          with open(summary_path) as f:
            summary = json.load(f)
        else:
          base, _, variant = agent.partition("+")
          if variant not in ("", "rw"):
            raise SystemExit(f"error: unknown variant {agent!r} (NAME or NAME+rw)")
          extra = ("sampler=return_weighted",) if variant == "rw" else ()
          spec = runner.RunSpec(
              agent=base, env=env, num_seeds=FLAGS.num_seeds, total_steps=FLAGS.grad_steps,
              num_evals=FLAGS.num_evals, eval_episodes=FLAGS.eval_episodes, env_args=env_args,
              overrides=(f"dataset={os.path.abspath(os.path.join(directory, level))}",
                         *extra, *overrides_for(base)))
          print(f"{env} {level} {agent} -> {workdir}", flush=True)
          summary = runner.train(spec, workdir, progress=True)
        if not summary.get("finished"):
          print(f"unfinished run {workdir}: skipped")
          continue
        scores = np.asarray(summary["final_normalized_score"], float)
        point, lo, hi = (x[0] for x in iqm_ci(scores[:, None]))
        results.append({"env": env, "level": level, "agent": agent, "scores": scores.tolist(),
                        "iqm": point, "ci": [lo, hi]})
      if FLAGS.d3rlpy_python and level in FLAGS.d3rlpy_levels:
        for algo in FLAGS.d3rlpy_agents:
          scores = d3rlpy_scores(env, env_args, directory, level, algo)
          if scores is None:
            print(f"missing d3rlpy {algo} run on {env} {level}: skipped")
            continue
          point, lo, hi = (x[0] for x in iqm_ci(scores[:, None]))
          results.append({"env": env, "level": level, "agent": "d3rlpy_" + algo,
                          "scores": scores.tolist(), "iqm": point, "ci": [lo, hi]})
  columns = FLAGS.agents + (["d3rlpy_" + a for a in FLAGS.d3rlpy_agents]
                            if FLAGS.d3rlpy_python else [])
  print("\n| env | level | transitions | MB on disk | TQ | SACo |\n|---|---|---|---|---|---|")
  for m in measures:
    print(f"| {m['env']} | {m['level']} | {m['transitions']:,} | {m['megabytes']:.1f} | "
          f"{m['tq']:.2f} | {m['saco']:.2f} |")
  print("\n| env | level | " + " | ".join(columns) + " |")
  print("|---|---|" + "---|" * len(columns))
  for env, _ in pairs:
    for level in FLAGS.levels:
      cells = []
      for agent in columns:
        r = [x for x in results if (x["env"], x["level"], x["agent"]) == (env, level, agent)]
        cells.append(f"{r[0]['iqm']:.1f} [{r[0]['ci'][0]:.1f}, {r[0]['ci'][1]:.1f}]" if r else "—")
      print(f"| {env} | {level} | " + " | ".join(cells) + " |")
  os.makedirs(FLAGS.runs, exist_ok=True)
  with open(os.path.join(FLAGS.runs, "offline_scores.json"), "w") as f:
    json.dump({"datasets": measures, "runs": results, "grad_steps": FLAGS.grad_steps,
               "num_seeds": FLAGS.num_seeds}, f, indent=1)


if __name__ == "__main__":
  app.run(main)
