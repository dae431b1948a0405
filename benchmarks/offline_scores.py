r"""Offline RL benchmark: normalised scores of every agent x dataset level x env, 5 seeds.

    python -m benchmarks.offline_scores --datasets=brax/hopper:runs/datasets/hopper \
        --runs=runs/offline --agents=td3_bc,iql,prdc,a2pr --grad_steps=100000

`--datasets` pairs an env with a directory of `experiments.make_dataset` (levels
random.npz, medium.npz, ... with reference returns in their metadata). For each env,
level and agent it trains (or resumes, or reads when finished) the run
<runs>/<env>/<level>/<agent> through `experiments.runner` with `--num_seeds` vmapped
seeds and `--grad_steps` gradient steps, then reports each run's final D4RL-normalised
score 100·(R − R_random)/(R_expert − R_random) over seeds as rliable's IQM with a 95%
bootstrap CI, and the datasets' TQ and SACo (evaluation/dataset_measures.py; SACo's
reference is the env's medium-replay level), transitions and size on disk. Prints
markdown tables and writes <runs>/offline_scores.json. `--report_only` reads finished
runs and trains nothing; missing runs are named and skipped.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags, logging

from benchmarks.learning_summary import iqm_ci
from evaluation import data as data_lib
from evaluation import dataset_measures
from experiments import runner

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", [], "env:directory pairs of make_dataset outputs.")
flags.DEFINE_string("runs", "runs/offline", "Directory of the training runs.")
flags.DEFINE_list("agents", ["td3_bc", "iql", "prdc", "a2pr"], "Offline agents.")
flags.DEFINE_list("levels", ["random", "medium", "medium-replay", "medium-expert", "expert"],
                  "Dataset levels.")
flags.DEFINE_integer("num_seeds", 5, "Seeds per run (vmapped).")
flags.DEFINE_integer("grad_steps", 100_000, "Gradient steps per seed.")
flags.DEFINE_integer("num_evals", 10, "Evaluations per run.")
flags.DEFINE_integer("eval_episodes", 10, "Episodes per evaluation.")
flags.DEFINE_multi_string("override", [], "Agent config override for every run, key=value.")
flags.DEFINE_bool("report_only", False, "Only summarise finished runs.")


def dataset_row(env: str, directory: str, level: str) -> dict:
  """TQ, SACo (vs medium-replay), transitions and size on disk of one level."""
  path = os.path.join(directory, level)
  data = data_lib.load(path)
  refs = data.metadata["reference_returns"]
  reference = data_lib.load(os.path.join(directory, "medium-replay"))
  return {"env": env, "level": level,
          "transitions": int(np.asarray(data_lib.valid_mask(data.terminated, data.truncated)).sum()),
          "megabytes": os.path.getsize(path + ".npz") / 2 ** 20,
          "tq": dataset_measures.trajectory_quality(data, refs["random"], refs["expert"]),
          "saco": dataset_measures.saco(data, reference)}


def run_dir(env: str, level: str, agent: str) -> str:
  return os.path.join(FLAGS.runs, env.replace("/", "_"), level, agent)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  pairs = [p.split(":", 1) for p in FLAGS.datasets]
  if not pairs or any(len(p) != 2 for p in pairs):
    raise SystemExit("error: --datasets takes env:directory pairs, e.g. brax/hopper:runs/datasets/hopper")
  results, measures = [], []
  for env, directory in pairs:
    for level in FLAGS.levels:
      if not os.path.exists(os.path.join(directory, level + ".npz")):
        print(f"missing dataset {directory}/{level}: skipped")
        continue
      measures.append(dataset_row(env, directory, level))
      for agent in FLAGS.agents:
        workdir = run_dir(env, level, agent)
        summary_path = os.path.join(workdir, "summary.json")
        if FLAGS.report_only:
          if not os.path.exists(summary_path):
            print(f"missing run {workdir}: skipped")
            continue
          with open(summary_path) as f:
            summary = json.load(f)
        else:
          spec = runner.RunSpec(
              agent=agent, env=env, num_seeds=FLAGS.num_seeds, total_steps=FLAGS.grad_steps,
              num_evals=FLAGS.num_evals, eval_episodes=FLAGS.eval_episodes,
              overrides=(f"dataset={os.path.abspath(os.path.join(directory, level))}",
                         *FLAGS.override))
          print(f"{env} {level} {agent} -> {workdir}", flush=True)
          summary = runner.train(spec, workdir, progress=True)
        if not summary.get("finished"):
          print(f"unfinished run {workdir}: skipped")
          continue
        scores = np.asarray(summary["final_normalized_score"], float)
        point, lo, hi = (x[0] for x in iqm_ci(scores[:, None]))
        results.append({"env": env, "level": level, "agent": agent, "scores": scores.tolist(),
                        "iqm": point, "ci": [lo, hi]})
  print("\n| env | level | transitions | MB on disk | TQ | SACo |\n|---|---|---|---|---|---|")
  for m in measures:
    print(f"| {m['env']} | {m['level']} | {m['transitions']:,} | {m['megabytes']:.1f} | "
          f"{m['tq']:.2f} | {m['saco']:.2f} |")
  print("\n| env | level | " + " | ".join(FLAGS.agents) + " |")
  print("|---|---|" + "---|" * len(FLAGS.agents))
  for env, _ in pairs:
    for level in FLAGS.levels:
      cells = []
      for agent in FLAGS.agents:
        r = [x for x in results if (x["env"], x["level"], x["agent"]) == (env, level, agent)]
        cells.append(f"{r[0]['iqm']:.1f} [{r[0]['ci'][0]:.1f}, {r[0]['ci'][1]:.1f}]" if r else "—")
      print(f"| {env} | {level} | " + " | ".join(cells) + " |")
  os.makedirs(FLAGS.runs, exist_ok=True)
  with open(os.path.join(FLAGS.runs, "offline_scores.json"), "w") as f:
    json.dump({"datasets": measures, "runs": results, "grad_steps": FLAGS.grad_steps,
               "num_seeds": FLAGS.num_seeds}, f, indent=1)


if __name__ == "__main__":
  app.run(main)
