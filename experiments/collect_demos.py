r"""Expert demonstrations for imitation learning, in the logged-data format.

    python -m experiments.collect_demos --env=dmc/cartpole_swingup --num_trajectories=4 \
        --expert_workdir=runs/sac_expert --out=runs/demos/cartpole_swingup_4

Trains an expert with `--agent` (default SAC) in `--expert_workdir` unless a finished run
is there, then rolls out `--num_trajectories` full episodes of it (the deterministic
policy tanh(mean) by default, `--nodeterministic` to sample) and saves them with
`evaluation.data.save`: <out>.npz + <out>.json, whose metadata holds every trajectory's
return, their mean, and the expert run. Interrupted, the same command resumes the
expert's training; the output files are written whole or not at all; a damaged expert
run (config, summary or checkpoint) is one clear error. behavior_log_prob is the expert's log-density
of the logged action (for the deterministic expert, at its own mean action).
"""

import json
import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("env", "dmc/cartpole_swingup", "Env name.")
flags.DEFINE_string("agent", "sac", "Expert agent (one with a tanh-Gaussian policy).")
flags.DEFINE_string("expert_workdir", None, "Expert training run (trained here if absent).")
flags.DEFINE_integer("expert_steps", 200_000, "Env steps of the expert if it must be trained.")
flags.DEFINE_integer("expert_seeds", 1, "Seeds of the expert run; the best is used.")
flags.DEFINE_multi_string("expert_override", [], "Config override of the expert, key=value.")
flags.DEFINE_multi_string("env_arg", [], "Env argument of the expert's run, key=value (e.g. "
                          "episode_length=100: the demonstrations' length too).")
flags.DEFINE_integer("num_trajectories", 4, "Expert episodes to save (K).")
flags.DEFINE_bool("deterministic", True, "Roll out tanh(mean) rather than sampling.")
flags.DEFINE_string("out", None, "Output path prefix (<out>.npz, <out>.json).")
flags.DEFINE_integer("seed", 0, "PRNG seed.")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  for name in ("expert_workdir", "out"):
    if not getattr(FLAGS, name):
      sys.exit(f"error: --{name} is required")
  if FLAGS.num_trajectories <= 0 or FLAGS.expert_steps <= 0:
    sys.exit("error: --num_trajectories and --expert_steps must be positive")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np

  import envs
  from evaluation import data as data_lib
  from experiments import runner
  from experiments.checkpoints import CheckpointError

  spec = runner.RunSpec(agent=FLAGS.agent, env=FLAGS.env, num_seeds=FLAGS.expert_seeds,
                        total_steps=FLAGS.expert_steps, seed=FLAGS.seed,
                        overrides=tuple(FLAGS.expert_override), env_args=tuple(FLAGS.env_arg))
  summary_path = os.path.join(FLAGS.expert_workdir, "summary.json")
  try:
    if not (os.path.exists(summary_path) and json.load(open(summary_path))["finished"]):
      print(f"training the expert in {FLAGS.expert_workdir}", file=sys.stderr)
      runner.exit_unless_finished(runner.train(spec, FLAGS.expert_workdir),
                                  FLAGS.expert_workdir, "the expert's training")
    spec = runner.RunSpec(**runner.read_spec(FLAGS.expert_workdir))
    _, env, agent = runner.build(spec)
    if agent.log_prob is None:
      sys.exit(f"error: agent {spec.agent!r} has no policy density; use sac, mdpo_off, ppo, ...")
    with open(summary_path) as f:
      expert = json.load(f)
    returns = np.asarray(expert["final_return"], np.float64)
    for d in expert.get("diverged", []):  # a frozen seed is no expert
      returns[d["seed"]] = -np.inf
    if not np.isfinite(returns).any():
      sys.exit(f"error: no seed of {FLAGS.expert_workdir} has a finite final return")
    best = int(np.argmax(returns))
    state = jax.tree.map(lambda x: x[best], runner.load_state(FLAGS.expert_workdir))
  except (ValueError, envs.EnvError, runner.RunError, CheckpointError) as e:
    sys.exit(f"error: {e}")
  except (OSError, KeyError, TypeError) as e:  # damaged config.json / summary.json
    sys.exit(f"error: {FLAGS.expert_workdir} cannot be read as a training run: {e}")
  params = agent.policy_params(state)
  policy = agent.make_policy(params, FLAGS.deterministic)
  demos = jax.jit(lambda k: data_lib.collect(
      env, policy, lambda o, a: agent.log_prob(params, o, a), k, FLAGS.num_trajectories,
      env.episode_length))(jax.random.PRNGKey(FLAGS.seed))
  returns = np.asarray(data_lib.discounted_returns(demos, 1.0))
  demos = data_lib.with_metadata(
      demos, env=FLAGS.env, expert_workdir=FLAGS.expert_workdir, expert_seed=best,
      deterministic=FLAGS.deterministic, seed=FLAGS.seed, returns=returns.tolist(),
      mean_return=float(returns.mean()), behavior_policy=f"{spec.agent} expert")
  data_lib.save(demos, FLAGS.out)
  print(json.dumps({"out": FLAGS.out, "num_trajectories": FLAGS.num_trajectories,
                    "returns": returns.tolist(), "mean_return": float(returns.mean())}))


if __name__ == "__main__":
  app.run(main)
