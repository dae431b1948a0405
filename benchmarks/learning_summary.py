r"""Summarises a training workdir: return vs env steps and the steps to a threshold.

    python -m benchmarks.learning_summary --workdir=runs/ppo_ip --threshold=900

Prints a markdown table of the evaluation return (mean ± std over seeds, min, max) at
each evaluation, and the first env-step count at which the seed-mean return reaches
the threshold (and at which every seed has reached it at least once).
"""

import json
import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A workdir written by experiments.train.")
flags.DEFINE_float("threshold", None, "Return threshold, e.g. 90% of the task's maximum.")


def table(workdir: str) -> tuple[list[int], np.ndarray]:
  """(env steps [E], eval returns [seeds, E]) from workdir/metrics.jsonl."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  steps = sorted({r["env_steps"] for r in rows})
  seeds = sorted({r["seed"] for r in rows})
  out = np.full((len(seeds), len(steps)), np.nan)
  for r in rows:
    out[seeds.index(r["seed"]), steps.index(r["env_steps"])] = r["eval_return"]
  return steps, out


def first_reaching(steps, returns, threshold):
  """(steps where the seed mean first >= threshold, steps when all seeds have) or None."""
  mean_hit = np.flatnonzero(returns.mean(0) >= threshold)
  per_seed = [np.flatnonzero(r >= threshold) for r in returns]
  all_hit = max(s[0] for s in per_seed) if all(len(s) for s in per_seed) else None
  return (steps[mean_hit[0]] if len(mean_hit) else None,
          steps[all_hit] if all_hit is not None else None)


def main(_):
  steps, returns = table(FLAGS.workdir)
  with open(os.path.join(FLAGS.workdir, "summary.json")) as f:
    summary = json.load(f)
  print(f"{summary['agent']} on {summary['env']}, {returns.shape[0]} seeds")
  print("| env steps | mean | std | min | max |\n|---|---|---|---|---|")
  for i, s in enumerate(steps):
    col = returns[:, i]
    print(f"| {s:,} | {col.mean():.1f} | {col.std():.1f} | {col.min():.1f} | {col.max():.1f} |")
  if FLAGS.threshold is not None:
    mean_at, all_at = first_reaching(steps, returns, FLAGS.threshold)
    print(f"steps to seed-mean return >= {FLAGS.threshold:g}: {mean_at}; "
          f"until every seed has reached it: {all_at}")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")  # here, so that importing `table` needs no flag
  app.run(main)
