r"""Off-policy selection of offline-trained candidates: the SharpeRatio@k workflow end to end.

    python -m experiments.ops --workdir=/tmp/ops          # the small default, minutes on 2 cores
    python -m experiments.ops --dataset=runs/datasets/hopper/medium --env=brax/hopper \
        --workdir=runs/ops/hopper_medium --agents=td3_bc,iql --num_seeds=4 --grad_steps=20000

Without --dataset it first makes its own (experiments.make_dataset into <workdir>/dataset:
a PPO expert on brax/inverted_pendulum with 100-step episodes, 100k env steps, and the
medium-replay level of 50 trajectories logged from its training) and runs on that.

1. Candidates: each offline agent of `--agents` (with `--agent_override AGENT:key=value`)
   at each point of its hyperparameter grid (`--grid 'AGENT:key=v1|v2|...'`; several
   --grid for one agent form their Cartesian product) trains on the dataset with
   `--num_seeds` vmapped seeds, keeping `--num_evals` checkpoints (experiments.runner; an
   interrupted run resumes). Every seed at every checkpoint from 1 on is a candidate,
   acting deterministically. Each grid point is its own run (its own compiled program).
2. True values: on-policy Monte-Carlo returns of every candidate (`--true_episodes`, at
   most the dataset's horizon), and V(π_b) as the dataset's mean return.
3. OPE on the dataset itself (the workflow's logged data): FQE, every estimator with the
   action kernel (`--kernel`, `--bandwidth`), the marginal estimators SAM-IS and SAM-DR
   with MWL weights (`--mwl_steps`, other MWLConfig fields by `--mwl`; for these
   deterministic candidates MWL learns the ratio of the policy smoothed by the same action
   kernel), and the return CDFs (cumulative-distribution OPE) with CVaR and quartiles.
4. Selection: the metrics of deploying the top k by each estimator (SharpeRatio@k,
   regret@k), and the simulated online A/B stage: the realised best, mean and worst true
   return among the k deployed (best@k, mean@k, worst@k). Risk-aware selection: the top k
   by each CD estimator's CVaR or lower quartile, scored on the Monte-Carlo one.

Writes <workdir>/ops_summary.json (with the MWL settings, each candidate's largest MWL
step mass (`evaluation.ope.marginal.step_mass`; above 2 a warning says the fit has likely
diverged) and the seconds of each stage: candidates, true values, OPE, selection with the
CDFs), the plots sharpe_ratio_at_k.png, return_cdfs.png (the worst, median and best
candidates' estimated CDFs against Monte-Carlo) and estimated_vs_true.png, and prints the
tables; candidate runs live in <workdir>/candidates/<agent>[/<key=value+...> for a grid
point].
"""

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time

from absl import app, flags, logging

from experiments.grid import grid_values

# The small default: a PPO expert on brax/inverted_pendulum (100-step episodes), and the
# medium-replay level of 50 trajectories that make_dataset logs from its training.
DEFAULT_DATASET = ["--env=brax/inverted_pendulum", "--env_arg=episode_length=100",
                   "--expert_steps=100000", "--expert_stages=5", "--num_trajectories=50"]

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", None, "Logged-data path of the offline dataset (no extension); "
                    "default: the small default (module docstring).")
flags.DEFINE_string("env", None, "Env the dataset was logged on (evaluation only).")
flags.DEFINE_string("workdir", None, "Output directory.")
flags.DEFINE_list("agents", ["td3_bc", "iql"], "Offline agents that make the candidates.")
flags.DEFINE_multi_string("agent_override", [], "AGENT:key=value config override.")
flags.DEFINE_multi_string("grid", [], "AGENT:key=v1|v2|...: candidates at each value "
                          "(quote it for the shell); several for one agent form a product.")
flags.DEFINE_multi_string("env_arg", [], "Env argument, key=value (e.g. episode_length=200).")
flags.DEFINE_integer("num_seeds", 2, "Seeds per agent (vmapped).")
flags.DEFINE_integer("grad_steps", 20_000, "Gradient steps per seed.")
flags.DEFINE_integer("num_evals", 4, "Checkpoints per run; each one's seeds are candidates.")
flags.DEFINE_integer("true_episodes", 256, "On-policy episodes per candidate for its true value.")
flags.DEFINE_float("bandwidth", 0.3, "Action kernel bandwidth (deterministic candidates).")
flags.DEFINE_string("kernel", "gaussian", "Action kernel.")
flags.DEFINE_integer("fqe_steps_per_stage", 50, "FQE Adam steps per backward-induction stage.")
flags.DEFINE_integer("mwl_steps", 2000, "Adam steps of minimax weight learning per candidate "
                     "(for SAM-IS and SAM-DR; 0 leaves them out).")
flags.DEFINE_multi_string("mwl", [], "Another MWLConfig field, key=value (repeatable, e.g. "
                          "time_bandwidth=1.0; steps: --mwl_steps).")
flags.DEFINE_integer("cdf_points", 64, "Thresholds of the return CDFs.")
flags.DEFINE_float("cvar_alpha", 0.1, "CVaR level.")
flags.DEFINE_float("discount", None, "Discount of the values; default: the dataset's.")
flags.DEFINE_integer("seed", 0, "PRNG seed.")


def grid_points(grid, agent, agent_override):
  """The hyperparameter points of `agent`: tuples of "key=value" overrides, [()] if none.

  grid: "AGENT:key=v1|v2|..." strings; one agent's keys form a Cartesian product.
  """
  axes, keys = [], []
  fixed = {o.partition(":")[2].partition("=")[0] for o in agent_override
           if o.partition(":")[0] == agent}
  for g in grid:
    name, _, rest = g.partition(":")
    key, values = grid_values(rest, g, "AGENT:key=v1|v2|...")
    if name != agent:
      continue
    if key in keys or key in fixed:
      raise ValueError(f"--grid sets {agent}:{key} twice (or also in --agent_override)")
    keys.append(key)
    axes.append([f"{key}={v}" for v in values])
  return list(itertools.product(*axes))


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not FLAGS.workdir:
    sys.exit("error: --workdir is required")
  if bool(FLAGS.dataset) != bool(FLAGS.env) or (not FLAGS.dataset and FLAGS.env_arg):
    sys.exit("error: give --dataset and --env together (or neither, and no --env_arg, for the "
             "small default)")

  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import numpy as np

  import envs
  from evaluation import candidates, data as data_lib, plots, sweep
  from evaluation.ope import (CD_ESTIMATORS, ESTIMATORS, MARGINAL_ESTIMATORS, MAX_STEP_MASS,
                              FQEConfig, MWLConfig, step_mass)
  from experiments import runner
  from experiments.agents import OFFLINE, config_from_overrides, make_config, parse_overrides
  from experiments.checkpoints import CheckpointError
  from experiments.preemption import EXIT_PREEMPTED
  from experiments.strict_json import clean

  bad = [a for a in FLAGS.agents if a not in OFFLINE]
  if bad:
    sys.exit(f"error: --agents takes offline agents ({', '.join(OFFLINE)}), got {bad}")
  bad = [g for g in FLAGS.grid if g.partition(":")[0] not in FLAGS.agents]
  if bad:
    sys.exit(f"error: --grid takes AGENT:key=v1|v2|... for an agent of --agents, got {bad}")
  bad = [o for o in FLAGS.agent_override
         if o.split(":", 1)[0] not in FLAGS.agents or "=" not in o.partition(":")[2]]
  if bad:
    sys.exit(f"error: --agent_override takes AGENT:key=value for an agent of --agents, got {bad}")
  if FLAGS.mwl_steps < 0:
    sys.exit(f"error: --mwl_steps must be >= 0, got {FLAGS.mwl_steps}")
  if FLAGS.mwl and not FLAGS.mwl_steps:
    sys.exit("error: --mwl needs --mwl_steps > 0 (0 leaves the marginal estimators out)")
  try:
    mwl_config = (config_from_overrides(MWLConfig, FLAGS.mwl, "--mwl", dict(steps=FLAGS.mwl_steps))
                  if FLAGS.mwl_steps else None)
  except ValueError as e:
    sys.exit(f"error: {e}")
  try:
    grids = {a: grid_points(FLAGS.grid, a, FLAGS.agent_override) for a in FLAGS.agents}
  except ValueError as e:
    sys.exit(f"error: {e}")
  if not FLAGS.dataset:  # the small default: its own dataset, made (or resumed) first
    directory = os.path.join(FLAGS.workdir, "dataset")
    print(f"no --dataset: making the small default's in {directory}", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", "experiments.make_dataset", *DEFAULT_DATASET,
                           f"--workdir={directory}"], check=False)
    if done.returncode:
      if done.returncode == EXIT_PREEMPTED:
        sys.exit(EXIT_PREEMPTED)
      sys.exit(f"error: making the default dataset failed (exit {done.returncode})")
    FLAGS.dataset = os.path.join(directory, "medium-replay")
    FLAGS.env = "brax/inverted_pendulum"
    FLAGS.env_arg = ["episode_length=100"]
  t_start = time.time()
  try:
    data = data_lib.load(FLAGS.dataset)
    env = envs.make(FLAGS.env, **parse_overrides(FLAGS.env_arg, {}, "--env_arg"))
  except (ValueError, envs.EnvError) as e:
    sys.exit(f"error: {e}")
  if FLAGS.discount is None and "discount" not in data.metadata:
    sys.exit(f"error: {FLAGS.dataset}.json records no discount (make_dataset writes it); "
             "pass --discount")
  discount = float(data.metadata["discount"] if FLAGS.discount is None else FLAGS.discount)
  horizon = data.horizon

  # 1. candidates: every agent's seeds x checkpoints, deterministic
  points = [(a, p) for a in FLAGS.agents for p in grids[a]]
  overrides_of = lambda a, p: [o.split(":", 1)[1] for o in FLAGS.agent_override
                               if o.split(":", 1)[0] == a] + list(p)
  for agent_name, point in points:   # every grid point's config, before any training
    try:
      make_config(agent_name, [f"dataset={os.path.abspath(FLAGS.dataset)}",
                                      *overrides_of(agent_name, point)])
    except ValueError as e:
      sys.exit(f"error: {agent_name} {' '.join(point)}: {e}")
  groups = []
  for agent_name, point in points:
    overrides = overrides_of(agent_name, point)
    spec = runner.RunSpec(agent=agent_name, env=FLAGS.env, num_seeds=FLAGS.num_seeds,
                          total_steps=FLAGS.grad_steps, seed=FLAGS.seed,
                          num_evals=FLAGS.num_evals, eval_episodes=2,
                          env_args=tuple(FLAGS.env_arg),
                          overrides=(f"dataset={os.path.abspath(FLAGS.dataset)}", *overrides))
    workdir = os.path.join(FLAGS.workdir, "candidates", agent_name, *(["+".join(point)] if point else []))
    name = agent_name + "".join(f" {p}" for p in point)
    try:
      runner.exit_unless_finished(runner.train(spec, workdir, keep_checkpoints=True), workdir,
                                  f"{name}'s candidate run")
      _, _, agent = runner.build(spec)
      steps = [s for s in runner.checkpoint_steps(workdir) if s > 0]
      params = [jax.vmap(agent.policy_params)(runner.load_state(workdir, s)) for s in steps]
    except (ValueError, runner.RunError, CheckpointError) as e:
      sys.exit(f"error: {e}")
    pool = {"params": jax.tree.map(lambda *x: jnp.concatenate(x), *params),
            "temperature": jnp.zeros(len(steps) * FLAGS.num_seeds)}
    config = dict(p.split("=", 1) for p in point)
    groups.append({"agent": agent_name, "family": candidates.DeterministicFamily(agent.make_policy),
                   "pool": pool, "labels": [{"agent": agent_name, **({"config": config} if config else {}),
                                             "checkpoint": s, "seed": i}
                                            for s in steps for i in range(FLAGS.num_seeds)]})
  labels = [l for g in groups for l in g["labels"]]
  num = len(labels)
  ks = tuple(range(1, num + 1))
  print(f"{num} candidates from {', '.join(FLAGS.agents)} ({len(groups)} runs)", file=sys.stderr)

  # 2. true values by Monte-Carlo; 3. OPE on the dataset, group by group
  keys = jax.random.split(jax.random.PRNGKey(FLAGS.seed), 3)
  fqe_config = FQEConfig(steps_per_stage=FLAGS.fqe_steps_per_stage)
  timing = {"candidates_seconds": time.time() - t_start, "true_values_seconds": 0.0,
            "ope_seconds": 0.0}
  true_returns, estimates, inputs_all = [], {}, []
  for g in groups:
    t0 = time.time()
    true_returns.append(np.asarray(jax.jit(lambda p, k, f=g["family"]: candidates.true_returns(
        env, f, p, k, FLAGS.true_episodes, horizon, discount))(g["pool"], keys[0])))
    t1 = time.time()
    inputs = jax.block_until_ready(jax.jit(lambda d, k, f=g["family"], p=g["pool"]: sweep.ratios_and_q(
        d, f, p, discount, k, True, FLAGS.bandwidth, fqe_config, FLAGS.kernel,
        mwl_config=mwl_config))(data, keys[1]))
    inputs_all.append(inputs)
    for n, v in sweep.estimate(data, inputs, discount).items():
      estimates.setdefault(n, []).append(np.asarray(v))
    timing["true_values_seconds"] += t1 - t0
    timing["ope_seconds"] += time.time() - t1
  t_select = time.time()
  true_returns = np.concatenate(true_returns)
  true_mean = true_returns.mean(1)
  estimates = {n: np.concatenate(v)[None] for n, v in estimates.items()}       # [1, P]
  inputs = jax.tree.map(lambda *x: jnp.concatenate(x), *inputs_all)
  logged = np.asarray(data_lib.discounted_returns(data, discount))
  behavior_value = float(logged.mean())
  mass = (np.asarray(step_mass(data, inputs["marginal_weight"])).max(1)
          if "marginal_weight" in inputs else None)                            # [P]
  bad = [] if mass is None else [int(i) for i in np.nonzero(~(mass <= MAX_STEP_MASS))[0]]
  if bad:                                                       # NaN included
    print(f"warning: MWL has likely diverged for candidates {bad} (their weights' mass at some "
          f"step is {', '.join(f'{mass[i]:.1f}' for i in bad)}, where the exact ratio's is at "
          "most 1): do not read their SAM-IS and SAM-DR", file=sys.stderr)

  # 4. selection by every estimator: SharpeRatio@k, regret@k and the realised top-k
  scores = jax.device_get(sweep.assess({n: jnp.asarray(v) for n, v in estimates.items()},
                                       jnp.asarray(true_mean), behavior_value, ks,
                                       behavior_value))
  means = sweep.summarize(estimates, scores)
  thresholds = jnp.asarray(sweep.risk_thresholds(np.concatenate([true_returns.ravel(), logged]),
                                                 FLAGS.cdf_points))
  cdfs = jax.tree.map(lambda x: x[None], sweep.cumulative(data, inputs, discount, thresholds))
  risk = jax.device_get(sweep.risk_assessment(cdfs, thresholds, jnp.asarray(true_returns),
                                              jnp.asarray(logged), ks, FLAGS.cvar_alpha))
  names = [n for n in ESTIMATORS + MARGINAL_ESTIMATORS if n in estimates]

  summary = clean({
      "dataset": FLAGS.dataset, "env": FLAGS.env, "discount": discount, "horizon": horizon,
      "behavior_value": behavior_value, "ks": list(ks),
      "mwl": None if mwl_config is None else dataclasses.asdict(mwl_config),
      "candidates": [{**l, "true_value": float(true_mean[i]),
                      **({} if mass is None else {"mwl_max_step_mass": float(mass[i])})}
                     for i, l in enumerate(labels)],
      "estimators": {n: {"estimates": estimates[n][0], "metrics_mean": means[n]["metrics_mean"]}
                     for n in names},
      "risk": {"cvar_alpha": FLAGS.cvar_alpha, "true": risk["true"],
               "abs_error": {n: {f: float(np.mean(v)) for f, v in e.items()}
                             for n, e in risk["abs_error"].items()},
               "estimated": {n: {f: v[0] for f, v in e.items()}
                             for n, e in risk["estimated"].items()},
               "selection": {n: v["metrics_mean"] for n, v in sweep.summarize(
                   {f"{n}/{f}": risk["estimated"][n][f] for n in risk["estimated"]
                    for f in ("cvar", "lower_quartile")}, risk["selection"]).items()}},
      "timing": {**timing, "selection_seconds": time.time() - t_select},
      "wall_seconds": time.time() - t_start})
  os.makedirs(FLAGS.workdir, exist_ok=True)
  with open(os.path.join(FLAGS.workdir, "ops_summary.json"), "w") as f:
    json.dump(summary, f, indent=1, allow_nan=False)

  title = f"{FLAGS.env} {os.path.basename(FLAGS.dataset)}: {num} offline-trained candidates"
  if num > 1:
    plots.sharpe_ratio_vs_k(list(ks[1:]), {n: np.asarray(scores[n]["sharpe_ratio@k"])[:, 1:]
                                           for n in names},
                            os.path.join(FLAGS.workdir, "sharpe_ratio_at_k.png"), title)
  order = np.argsort(true_mean)
  shown = sorted({int(order[0]), int(order[num // 2]), int(order[-1])})
  plots.return_cdfs(np.asarray(thresholds), np.asarray(risk["true_cdf"]),
                    {n: np.asarray(c)[0] for n, c in cdfs.items()}, shown,
                    [f"{labels[p]['agent']}"
                     + "".join(f" {k}={v}" for k, v in labels[p].get("config", {}).items())
                     + f" ckpt {labels[p]['checkpoint']} seed {labels[p]['seed']}"
                     f" (V {true_mean[p]:.1f})" for p in shown],
                    os.path.join(FLAGS.workdir, "return_cdfs.png"),
                    f"{title}: return CDFs (worst, median, best)")
  plots.estimated_vs_true(true_mean, {n: estimates[n] for n in names}, behavior_value,
                          os.path.join(FLAGS.workdir, "estimated_vs_true.png"), title)

  fmt = lambda x: "nan" if x is None else x if isinstance(x, str) else f"{x:.3g}"
  k = min(3, num)
  print(f"\n{num} candidates; V(pi_b) {behavior_value:.2f} (the dataset's mean return); best "
        f"candidate {true_mean.max():.2f}; top-{k} deployed by each estimator:")

  def selection_table(header, rows):
    print(f"| {header} | rank corr | regret@1 | SharpeRatio@{k} | best@{k} | mean@{k} "
          f"| worst@{k} |")
    print("|---" * 7 + "|")
    for n, mm in rows:
      print(f"| {n} | {fmt(mm['rank_correlation'])} | {fmt(mm['regret@k'][0])} | "
            f"{fmt(mm['sharpe_ratio@k'][k - 1])} | {fmt(mm['best@k'][k - 1])} | "
            f"{fmt(mm['mean@k'][k - 1])} | {fmt(mm['worst@k'][k - 1])} |")

  selection_table("estimator", [(n, summary["estimators"][n]["metrics_mean"]) for n in names])
  cds = [n for n in CD_ESTIMATORS if n in summary["risk"]["abs_error"]]
  print("\n| CD estimator | |error| of mean | of CVaR | of lower quartile |")
  print("|---|---|---|---|")
  for n in cds:
    e = summary["risk"]["abs_error"][n]
    print(f"| {n} | {fmt(e['mean'])} | {fmt(e['cvar'])} | {fmt(e['lower_quartile'])} |")
  print(f"\nTop-{k} by an estimated risk functional, scored on the true one (CVaR_"
        f"{FLAGS.cvar_alpha:g} or lower quartile of the Monte-Carlo returns):")
  selection_table("CD estimator / functional",
                  [(f"{n} / {f}", summary["risk"]["selection"][f"{n}/{f}"])
                   for f in ("cvar", "lower_quartile") for n in cds])
  print(f"wall {summary['wall_seconds']:.0f}s")


if __name__ == "__main__":
  app.run(main)
