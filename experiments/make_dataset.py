r"""D4RL-style datasets from our own agents, in the logged-data format.

    python -m experiments.make_dataset --env=brax/inverted_pendulum --workdir=/tmp/datasets/ip

D4RL's files cannot be downloaded here, so the levels are made the way D4RL made them,
with an expert trained here (`--agent`, every checkpoint kept, in <workdir>/expert; a
finished run there is reused, an interrupted one resumes):

  random         uniformly random actions in [-1, 1]
  medium         the checkpoint whose (deterministic) evaluation return is nearest
                 `--medium_fraction` (default 0.4, D4RL's "about a third to a half") of
                 the way from the random return to the final checkpoint's, acting
                 stochastically
  expert         the final checkpoint of the expert run's best seed, acting stochastically
  medium-replay  rollouts of every checkpoint from the untrained one (0) to the medium
                 one, equal shares: the data of training up to medium (each trajectory
                 logged with the log-probabilities of the checkpoint that acted)
  medium-expert  medium and expert concatenated

Each level is `--num_trajectories` full episodes (medium-expert twice that), saved as
<workdir>/<level>.{npz,json}; the metadata holds the level, the behaviour policy, the
discount and the reference returns (random and expert mean undiscounted returns), from
which offline runs report D4RL's normalised score 100·(R − R_random)/(R_expert − R_random).
The summary also gives each level's trajectory quality (TQ) and state-action coverage
(SACo, relative to medium-replay; evaluation/dataset_measures.py) and its size per 1M
transitions on disk (compressed .npz) and in memory (padding after early terminations
included).
Levels already saved are kept (re-running resumes). The summary (returns per level,
sizes on disk and in memory) is printed and written to <workdir>/datasets.json.
"""

import json
import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("env", "brax/inverted_pendulum", "Env name.")
flags.DEFINE_string("workdir", None, "Output directory (the expert run goes to <workdir>/expert).")
flags.DEFINE_string("agent", "ppo", "Expert agent (one with a stochastic policy density).")
flags.DEFINE_integer("expert_steps", 200_000, "Env steps of the expert run.")
flags.DEFINE_integer("expert_stages", 10, "Checkpoints (evaluations) of the expert run.")
flags.DEFINE_integer("expert_seeds", 1, "Seeds of the expert run; the best is used.")
flags.DEFINE_multi_string("expert_override", [], "Config override of the expert, key=value.")
flags.DEFINE_multi_string("env_arg", [], "Env argument, key=value (e.g. episode_length=100: "
                          "the datasets' horizon; offline runs on them take the same "
                          "--env_arg).")
flags.DEFINE_integer("num_trajectories", 100, "Episodes per level.")
flags.DEFINE_float("medium_fraction", 0.4, "Where medium sits between random (0) and expert (1).")
flags.DEFINE_float("discount", 0.99, "Discount recorded in the metadata.")
flags.DEFINE_integer("seed", 0, "PRNG seed.")

LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not FLAGS.workdir:
    sys.exit("error: --workdir is required")
  if FLAGS.num_trajectories <= 0 or FLAGS.expert_steps <= 0 or FLAGS.expert_stages < 2:
    sys.exit("error: --num_trajectories and --expert_steps must be positive, --expert_stages >= 2")
  if not 0.0 < FLAGS.medium_fraction < 1.0:
    sys.exit("error: --medium_fraction must be in (0, 1)")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import numpy as np

  import envs
  from evaluation import data as data_lib
  from evaluation import dataset_measures
  from experiments import runner
  from experiments.checkpoints import CheckpointError

  expert_dir = os.path.join(FLAGS.workdir, "expert")
  spec = runner.RunSpec(agent=FLAGS.agent, env=FLAGS.env, num_seeds=FLAGS.expert_seeds,
                        total_steps=FLAGS.expert_steps, seed=FLAGS.seed,
                        num_evals=FLAGS.expert_stages, eval_episodes=8,
                        overrides=tuple(FLAGS.expert_override), env_args=tuple(FLAGS.env_arg))
  try:
    summary = runner.train(spec, expert_dir, keep_checkpoints=True)
    runner.exit_unless_finished(summary, expert_dir, "the expert's training")
    _, env, agent = runner.build(spec)
    if agent.log_prob is None:
      sys.exit(f"error: agent {FLAGS.agent!r} has no policy density; use ppo, sac, ...")
    rows = [json.loads(l) for l in open(os.path.join(expert_dir, "metrics.jsonl"))]
    diverged = {d["seed"] for d in summary["diverged"]}
    final = [r for r in rows if r["chunk"] == summary["chunks_done"] and r["seed"] not in diverged]
    best = max(final, key=lambda r: r["eval_return"])["seed"]
    curve = {r["chunk"]: r["eval_return"] for r in rows if r["seed"] == best}
    states = {c: jax.tree.map(lambda x: x[best], runner.load_state(expert_dir, c))
              for c in sorted(curve)}
  except (ValueError, envs.EnvError, runner.RunError, CheckpointError) as e:
    sys.exit(f"error: {e}")

  horizon = env.episode_length
  keys = iter(jax.random.split(jax.random.PRNGKey(FLAGS.seed), 64))

  def rollouts(params, n, key):
    policy = agent.make_policy(params, False)
    return jax.jit(lambda k: data_lib.collect(
        env, policy, lambda o, a: agent.log_prob(params, o, a), k, n, horizon))(key)

  def random_rollouts(n, key):
    uniform = lambda obs, k: jax.random.uniform(k, obs.shape[:-1] + (env.action_size,),
                                                minval=-1.0, maxval=1.0)
    log_density = lambda obs, a: jnp.full(a.shape[:-1], -env.action_size * np.log(2.0))
    return jax.jit(lambda k: data_lib.collect(env, uniform, log_density, k, n, horizon))(key)

  def mean_return(d):
    return float(np.mean(np.asarray(data_lib.discounted_returns(d, 1.0))))

  # Reference returns: the random policy's and the expert's (stochastic, as it logs).
  data = {"random": random_rollouts(FLAGS.num_trajectories, next(keys))}
  last = max(curve)
  data["expert"] = rollouts(agent.policy_params(states[last]), FLAGS.num_trajectories, next(keys))
  r_random, r_expert = mean_return(data["random"]), mean_return(data["expert"])
  if r_expert <= r_random:
    sys.exit(f"error: the expert ({r_expert:.1f}) is no better than random ({r_random:.1f}); "
             "train it longer (--expert_steps)")
  # The checkpoints' curve holds deterministic evaluation returns: place medium on that
  # scale (the expert's logged, stochastic return can be far lower).
  target = r_random + FLAGS.medium_fraction * (curve[last] - r_random)
  medium = min((c for c in curve if 0 < c < last), key=lambda c: abs(curve[c] - target),
               default=None)
  if medium is None:
    sys.exit("error: the expert run has no intermediate checkpoint; use --expert_stages >= 2")
  data["medium"] = rollouts(agent.policy_params(states[medium]), FLAGS.num_trajectories, next(keys))
  stages = [c for c in sorted(curve) if c <= medium]   # from the untrained policy on
  shares = np.diff(np.linspace(0, FLAGS.num_trajectories, len(stages) + 1).round().astype(int))
  parts = [rollouts(agent.policy_params(states[c]), int(n), next(keys))
           for c, n in zip(stages, shares) if n > 0]
  concat = lambda ds: jax.tree.map(lambda *xs: jnp.concatenate(xs), *ds)
  data["medium-replay"] = concat(parts)
  data["medium-expert"] = concat([data["medium"], data["expert"]])

  behaviour = {"random": "uniform", "expert": f"{FLAGS.agent}@{last}",
               "medium": f"{FLAGS.agent}@{medium}",
               "medium-replay": f"{FLAGS.agent}@" + ",".join(map(str, stages)),
               "medium-expert": f"{FLAGS.agent}@{medium}+{FLAGS.agent}@{last}"}
  out = {"env": FLAGS.env, "expert_workdir": expert_dir, "expert_seed": best,
         "reference_returns": {"random": r_random, "expert": r_expert},
         "medium_checkpoint": medium, "levels": {}}
  saved = {}
  for level in LEVELS:
    path = os.path.join(FLAGS.workdir, level)
    if not (os.path.exists(path + ".npz") and os.path.exists(path + ".json")):
      data_lib.save(data_lib.with_metadata(
          data[level], env=FLAGS.env, level=level, behavior_policy=behaviour[level],
          discount=FLAGS.discount, seed=FLAGS.seed,
          reference_returns={"random": r_random, "expert": r_expert}), path)
    saved[level] = data_lib.load(path)   # the figures describe the files as kept
  for level in LEVELS:
    path = os.path.join(FLAGS.workdir, level)
    d = saved[level]
    valid = np.asarray(data_lib.valid_mask(d.terminated, d.truncated))
    ret = mean_return(d)
    out["levels"][level] = {
        "trajectories": d.num_trajectories, "transitions": int(valid.sum()),
        "mean_return": ret, "normalized_score": 100 * (ret - r_random) / (r_expert - r_random),
        "bytes_on_disk": os.path.getsize(path + ".npz") + os.path.getsize(path + ".json"),
        "bytes_in_memory": int(sum(np.asarray(getattr(d, k)).nbytes for k in data_lib.ARRAYS)),
        "tq": dataset_measures.trajectory_quality(d, r_random, r_expert),
        "saco": dataset_measures.saco(d, saved["medium-replay"])}
    row = out["levels"][level]
    for what in ("bytes_on_disk", "bytes_in_memory"):   # MiB at D4RL's 1M transitions
      row[what.replace("bytes", "mib_per_1M_transitions")] = (
          row[what] / max(row["transitions"], 1) * 1e6 / 2 ** 20)
  with open(os.path.join(FLAGS.workdir, "datasets.json"), "w") as f:
    json.dump(out, f, indent=2)
  print(json.dumps(out, indent=2))


if __name__ == "__main__":
  app.run(main)
