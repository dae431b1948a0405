r"""A hyperparameter sweep as one program against separate runs: wall time, side by side.

    python -m benchmarks.sweep_speed --workdir=runs/sweep_speed

4 learning rates × 4 seeds of PPO on brax/inverted_pendulum (--total_steps each):
- one `experiments.sweep` process: the learning rate is traced, so the 16 members are
  one compiled program;
- 16 separate `experiments.train` processes, one per (learning rate, seed), as a user
  without the sweep would run them (each compiles its own program).
Both are timed as whole processes (start-up, compilation and evaluation included), one
after the other. The separate runs take --seed=s with one seed, so their keys differ from
the sweep's (member s of a point has seed s of a 4-seed run's keys; that such a member
trains bit for bit as that run is tests/experiments/test_sweep.py's check): the final
returns are shown side by side as means, not compared number for number.
Writes <workdir>/sweep_speed.json.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output directory (must be new or empty).")
flags.DEFINE_list("learning_rates", ["1e-4", "3e-4", "1e-3", "3e-3"], "Swept learning rates.")
flags.DEFINE_integer("num_seeds", 4, "Seeds per learning rate.")
flags.DEFINE_integer("total_steps", 100_000, "Env steps per run.")
flags.DEFINE_string("env", "brax/inverted_pendulum", "Env.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ["--agent=ppo", "--num_evals=2", "--eval_episodes=4", "--noprogress"]


def timed(cmd: list[str], log: str) -> float:
  start = time.perf_counter()
  with open(log, "w") as f:
    done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
  if done.returncode:
    sys.exit(f"error: {' '.join(cmd)} failed; see {log}")
  return time.perf_counter() - start


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not FLAGS.workdir:
    sys.exit("error: --workdir is required")
  if os.path.exists(FLAGS.workdir) and os.listdir(FLAGS.workdir):
    sys.exit(f"error: {FLAGS.workdir} is not empty: timings need fresh runs")
  os.makedirs(FLAGS.workdir)
  import numpy as np  # pylint: disable=import-outside-toplevel
  steps = [f"--total_steps={FLAGS.total_steps}", f"--env={FLAGS.env}"]
  sweep_dir = os.path.join(FLAGS.workdir, "sweep")
  sweep_seconds = timed([sys.executable, "-m", "experiments.sweep", *COMMON, *steps,
                         f"--workdir={sweep_dir}", f"--num_seeds={FLAGS.num_seeds}",
                         "--grid=learning_rate=" + "|".join(FLAGS.learning_rates)],
                        os.path.join(FLAGS.workdir, "sweep.log"))
  with open(os.path.join(sweep_dir, "sweep.json")) as f:
    swept = {p["learning_rate"]: p["final_return"] for p in json.load(f)["points"]}
  separate_seconds, separate = 0.0, {}
  for lr in FLAGS.learning_rates:
    for s in range(FLAGS.num_seeds):
      wd = os.path.join(FLAGS.workdir, f"train_lr{lr}_seed{s}")
      separate_seconds += timed([sys.executable, "-m", "experiments.train", *COMMON, *steps,
                                 f"--workdir={wd}", "--num_seeds=1", f"--seed={s}",
                                 f"--override=learning_rate={lr}"], wd + ".log")
      with open(os.path.join(wd, "summary.json")) as f:
        separate.setdefault(lr, []).append(json.load(f)["final_return"][0])
  out = {"env": FLAGS.env, "total_steps": FLAGS.total_steps, "learning_rates": FLAGS.learning_rates,
         "num_seeds": FLAGS.num_seeds, "sweep_seconds": sweep_seconds,
         "separate_seconds": separate_seconds, "ratio": separate_seconds / sweep_seconds,
         "sweep_final_return_mean": {k: float(np.mean(v)) for k, v in swept.items()},
         "separate_final_return_mean": {k: float(np.mean(v)) for k, v in separate.items()}}
  with open(os.path.join(FLAGS.workdir, "sweep_speed.json"), "w") as f:
    json.dump(out, f, indent=1)
  n = len(FLAGS.learning_rates) * FLAGS.num_seeds
  print(f"| | wall time | |\n|---|---|---|\n| 1 sweep process ({n} members, one program) | "
        f"{sweep_seconds:.0f} s | 1x |\n| {n} separate train processes | {separate_seconds:.0f} s | "
        f"{out['ratio']:.1f}x |")
  for lr in FLAGS.learning_rates:
    print(f"lr {lr}: final return mean, sweep {out['sweep_final_return_mean'][lr]:.1f}, "
          f"separate {out['separate_final_return_mean'][lr]:.1f}")


if __name__ == "__main__":
  app.run(main)
