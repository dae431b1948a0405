r"""Train an agent over many seeds at once.

    python -m experiments.train --agent=ppo --env=brax/inverted_pendulum \
        --num_seeds=4 --total_steps=200000 --workdir=/tmp/run

Writes config.json, metrics.jsonl (one line per evaluation per seed), summary.json,
checkpoints/ and learning_curve.png into --workdir; re-running with the same workdir
resumes from the last readable checkpoint. Hyperparameters: --override key=value
(repeatable), env arguments: --env_arg key=value (e.g. episode_length=200).

Exit status: 0 done (or stopped by --max_chunks); 1 an error, one line on stderr (bad
flag, workdir in use or unwritable, no readable checkpoint); 3 every seed diverged;
75 preempted: SIGTERM stopped the run at a checkpoint, re-run the same command to resume.
"""

import json
import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
EXIT_DIVERGED = 3
flags.DEFINE_string("agent", "ppo", "Agent to train: ppo, mdpo, props, sac, td3, mdpo_off, dac, "
                    "dac_ailboost, ailboost, ailboost_dacdisc; offline: td3_bc, iql, prdc, a2pr "
                    "(--dataset).")
flags.DEFINE_string("env", "brax/inverted_pendulum", "Env name, backend/task (see envs.names()).")
flags.DEFINE_integer("num_seeds", 4, "Seeds trained at once (vmapped).")
flags.DEFINE_integer("total_steps", 200_000, "Env steps per seed.")
flags.DEFINE_integer("seed", 0, "Base PRNG seed; seed i uses split(PRNGKey(seed))[i].")
flags.DEFINE_integer("num_evals", 10, "Evaluations (and checkpoints) over the run.")
flags.DEFINE_integer("eval_episodes", 8, "Episodes per evaluation per seed.")
flags.DEFINE_string("workdir", None, "Output directory; re-use it to resume.")
flags.DEFINE_multi_string("override", [], "Agent config override, key=value.")
flags.DEFINE_multi_string("env_arg", [], "envs.make keyword argument, key=value.")
flags.DEFINE_integer("max_chunks", None, "Stop after this many evaluation chunks in this "
                     "invocation (resume later with the same --workdir).")
flags.DEFINE_string("demos", None, "Expert demonstrations (logged-data path) for dac and ailboost; "
                    "the same as --override demos=PATH.")
flags.DEFINE_string("dataset", None, "Logged data (path without .npz) for the offline agents "
                    "td3_bc, iql, prdc and a2pr; the same as --override dataset=PATH. Their "
                    "--total_steps counts gradient steps; the env only evaluates.")
flags.DEFINE_bool("keep_checkpoints", False, "Keep every chunk's checkpoint, not the last 2.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_float("divergence_bound", 1e10, "A seed whose |loss| or |kl| metric passes this "
                   "(or whose policy parameters turn non-finite) is frozen and reported; "
                   "inf: parameters only.")
flags.DEFINE_integer("cpu_devices", 0, "Host CPU devices to expose to JAX (0: one per core), "
                     "so that seeds shard over cores as over GPUs. Ignored if XLA_FLAGS "
                     "already sets --xla_force_host_platform_device_count.")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  if not FLAGS.workdir:
    sys.exit("error: --workdir is required")
  xla_flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in xla_flags:
    cores = FLAGS.cpu_devices or len(os.sched_getaffinity(0))
    os.environ["XLA_FLAGS"] = f"{xla_flags} --xla_force_host_platform_device_count={cores}".strip()
  # Imported here so that --help and flag errors answer without loading JAX, and so
  # that XLA_FLAGS is set before JAX starts.
  from envs import EnvError  # pylint: disable=import-outside-toplevel
  from experiments import runner  # pylint: disable=import-outside-toplevel
  from experiments.preemption import EXIT_PREEMPTED  # pylint: disable=import-outside-toplevel
  demos = (f"demos={FLAGS.demos}",) if FLAGS.demos else ()
  if FLAGS.dataset:
    from experiments.agents import OFFLINE  # pylint: disable=import-outside-toplevel
    if FLAGS.agent not in OFFLINE:
      sys.exit(f"error: --dataset is for the offline agents ({', '.join(OFFLINE)}); "
               f"{FLAGS.agent} learns from the env")
    demos += (f"dataset={FLAGS.dataset}",)
  spec = runner.RunSpec(agent=FLAGS.agent, env=FLAGS.env, num_seeds=FLAGS.num_seeds,
                        total_steps=FLAGS.total_steps, seed=FLAGS.seed,
                        num_evals=FLAGS.num_evals, eval_episodes=FLAGS.eval_episodes,
                        overrides=tuple(FLAGS.override) + demos, env_args=tuple(FLAGS.env_arg),
                        divergence_bound=FLAGS.divergence_bound)
  try:
    summary = runner.train(spec, FLAGS.workdir, progress=FLAGS.progress,
                           max_chunks=FLAGS.max_chunks, keep_checkpoints=FLAGS.keep_checkpoints)
  except (ValueError, EnvError) as e:
    sys.exit(f"error: {e}")
  except runner.RunError as e:
    # After a failed write orbax's background threads may still be failing (tensorstore
    # callbacks into closed event loops print tracebacks at interpreter teardown): the
    # lock is released and every file closed, so leave at once with our line last.
    sys.stdout.flush()
    sys.stderr.flush()
    # Silence the other threads (fd 2 -> /dev/null), then write our line to the real
    # stderr, on a line of its own (a dying thread may have left half a line).
    real = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    os.write(real, f"\nerror: {e}\n".encode())
    os._exit(1)  # pylint: disable=protected-access
  except KeyboardInterrupt:
    sys.exit(f"interrupted; re-run with --workdir={FLAGS.workdir} to resume")
  print(json.dumps(summary, indent=2))
  if summary["all_diverged"]:
    first = summary["diverged"][0]
    print(f"error: every seed diverged (seed {first['seed']} first at env step "
          f"{first['env_step']}: {first['reason']}); see {FLAGS.workdir}/metrics.jsonl",
          file=sys.stderr)
    sys.exit(EXIT_DIVERGED)
  if summary["preempted"]:
    print(f"preempted: stopped at checkpoint {summary['chunks_done']} after SIGTERM; re-run "
          "the same command to resume", file=sys.stderr)
    sys.exit(EXIT_PREEMPTED)


if __name__ == "__main__":
  app.run(main)
