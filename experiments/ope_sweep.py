r"""OPE sweep: every estimator over S logged datasets and P candidate policies, in parallel.

    python -m experiments.ope_sweep --workdir=/tmp/ope            # small default, a few minutes

Steps: (1) the candidate source is a training run of `--agent` on `--env` with every
checkpoint kept (`--policy_workdir`, trained here first if it is not there); (2) the
pool is each checkpoint stage at each `--temperatures` (scale of the policy's standard
deviation; 0 = deterministic, evaluated with `--kernel` truncated to the action box);
(3) true values and V(π_b) by on-policy Monte-Carlo (`--true_episodes` per candidate,
standard errors reported); (4) `--num_datasets` fresh datasets of the behaviour
candidate; (5) FQE (backward induction) and every estimator and confidence interval for
every (dataset, candidate) pair, vmapped, the dataset axis sharded over the devices (one
per core on a CPU); (6) every metric per k, as plain means over datasets, with the count
of datasets where an estimator gave a non-finite estimate.

Re-running with the same --workdir resumes: the candidate run resumes from its last
checkpoint, and each finished stage (true values, datasets, FQE, intervals) is read back
from --workdir/stages/ when the flags are the same. One process per workdir.

Writes into --workdir: ope_summary.json (per estimator: estimates per dataset, every
metric per dataset and mean, per k; confidence intervals with their coverage of the
true values; the metrics of selection by each interval's lower bound), ope_table.csv,
sharpe_ratio_at_k.png, estimated_vs_true.png, and the first dataset with the estimators' inputs
(logged/dataset_0.{npz,json}, logged/ope_inputs_0.npz) for comparisons.
"""

import csv
import json
import os
import sys
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output directory.")
flags.DEFINE_string("env", "dmc/cartpole_balance", "Env name.")
flags.DEFINE_string("agent", "ppo", "Agent whose checkpoints are the candidates (ppo, mdpo, props, sac, mdpo_off).")
flags.DEFINE_string("policy_workdir", None, "Training run with all checkpoints (default: workdir/policy).")
flags.DEFINE_integer("policy_steps", 200_000, "Env steps of the candidate run if it must be trained.")
flags.DEFINE_integer("policy_stages", 4, "Checkpoints of the candidate run if it must be trained.")
flags.DEFINE_multi_string("policy_override", [], "Config override of the candidate run, key=value.")
flags.DEFINE_list("stages", [], "Checkpoint steps to use as candidates (default: all after 0).")
flags.DEFINE_list("temperatures", ["0.5", "1.0", "2.0"], "Std scales of the candidates (0: deterministic).")
flags.DEFINE_integer("behavior_stage", None, "Checkpoint of the behaviour policy (default: middle).")
flags.DEFINE_float("behavior_temperature", 1.5, "Std scale of the behaviour policy (> 0).")
flags.DEFINE_bool("kernel_truncate", True, "Truncate the action kernel to the [-1, 1] box (False: "
                  "normalised over R as SCOPE-RL's, biased towards 0 near the bounds; for ablations).")
flags.DEFINE_float("bandwidth", 0.3, "Action-kernel width for deterministic candidates.")
flags.DEFINE_string("kernel", "gaussian", "Action kernel for deterministic candidates (truncated to [-1, 1]): "
                    "gaussian, epanechnikov, triangular, cosine, uniform.")
flags.DEFINE_integer("horizon", 50, "Steps per logged trajectory (the estimand's horizon).")
flags.DEFINE_float("discount", 0.99, "Discount of the estimand.")
flags.DEFINE_integer("num_datasets", 8, "Fresh logged datasets (data seeds).")
flags.DEFINE_integer("num_trajectories", 100, "Trajectories per dataset.")
flags.DEFINE_integer("true_episodes", 512, "On-policy episodes per candidate for its true value.")
flags.DEFINE_integer("fqe_steps_per_stage", 100, "FQE Adam steps per backward-induction stage "
                     "(horizon x this per (dataset, candidate)).")
flags.DEFINE_float("safety_threshold", None, "Threshold of Type I/II errors and safety violations "
                   "(default: V(pi_b) by Monte-Carlo; SCOPE-RL's default is 0).")
flags.DEFINE_bool("clip_sharpe_ratio", False, "SCOPE-RL's clip of SharpeRatio@k: inf -> 100, then [0, 100].")
flags.DEFINE_float("alpha", 0.05, "Confidence intervals at level 1 - alpha.")
flags.DEFINE_integer("num_bootstrap", 1000, "Bootstrap resamples per interval.")
flags.DEFINE_integer("seed", 0, "PRNG seed.")
flags.DEFINE_integer("cdf_points", 64, "Thresholds of the return CDFs (cumulative-distribution OPE).")
flags.DEFINE_float("cvar_alpha", 0.1, "CVaR level: the mean of the worst cvar_alpha of returns.")


def _fail(message):
  sys.exit(f"error: {message}")


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}")
  args = check_flags()
  from experiments.workdir_lock import WorkdirLock, WorkdirLocked  # pylint: disable=import-outside-toplevel
  try:
    os.makedirs(FLAGS.workdir, exist_ok=True)
    lock = WorkdirLock(FLAGS.workdir).acquire()
  except WorkdirLocked as e:
    _fail(e)
  except OSError as e:
    _fail(f"cannot write to {FLAGS.workdir}: {e.strerror or e}")
  try:
    run(*args)
  finally:
    lock.release()


def check_flags() -> tuple[list[float], bool]:
  """Validates the flags (exits with one clear line), quiets absl, gives the CPU one device
  per core; -> (temperatures, deterministic). Call before jax is imported."""
  if not FLAGS.workdir:
    _fail("--workdir is required")
  temps = [float(t) for t in FLAGS.temperatures]
  deterministic = all(t == 0 for t in temps)
  if any(t == 0 for t in temps) and not deterministic:
    _fail("--temperatures mixes deterministic (0) and stochastic candidates; sweep them apart")
  if FLAGS.behavior_temperature <= 0:
    _fail("--behavior_temperature must be > 0 (the behaviour policy needs a density)")
  for name in ("horizon", "num_datasets", "num_trajectories", "true_episodes", "fqe_steps_per_stage",
               "num_bootstrap"):
    if getattr(FLAGS, name) <= 0:
      _fail(f"--{name} must be positive")
  kernels = ("gaussian", "epanechnikov", "triangular", "cosine", "uniform")
  if FLAGS.kernel not in kernels:
    _fail(f"--kernel must be one of {', '.join(kernels)}, got {FLAGS.kernel!r}")
  if not FLAGS.bandwidth > 0:
    _fail("--bandwidth must be > 0")
  if not 0 < FLAGS.alpha < 1:
    _fail("--alpha must be in (0, 1)")
  if FLAGS.num_bootstrap < 2:
    _fail("--num_bootstrap must be >= 2")
  if FLAGS.num_trajectories < 2:
    _fail("--num_trajectories must be >= 2 (confidence intervals)")
  if not 0 <= FLAGS.discount <= 1:
    _fail("--discount must be in [0, 1]")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  os.environ.setdefault("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={len(os.sched_getaffinity(0))}"
  return temps, deterministic


def prepare(temps, deterministic) -> dict:
  """Steps 1-4 from the flags: candidates, true values and V(π_b), the logged datasets.

  Returns a dict (env, family, pool, behavior, stages, behavior_stage, policy_dir, spec,
  num, ks, keys, true_mean, true_se, true_returns [P, E], behavior_returns [E],
  behavior_value, behavior_value_se, true_seconds,
  datasets [S, N, T], behavior_values [S] (the logged mean returns), sharding, devices).
  Also used by benchmarks/ope_pipeline.py.
  """
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np

  import envs
  from evaluation import candidates, data as data_lib, sweep
  from experiments import runner
  from experiments.agents import policy_network
  from experiments.checkpoints import CheckpointError, checkpoint_digest
  from experiments.stage_cache import StageCache

  policy_dir = FLAGS.policy_workdir or os.path.join(FLAGS.workdir, "policy")
  spec = runner.RunSpec(agent=FLAGS.agent, env=FLAGS.env, num_seeds=1,
                        total_steps=FLAGS.policy_steps, seed=FLAGS.seed,
                        num_evals=FLAGS.policy_stages, eval_episodes=4,
                        overrides=tuple(FLAGS.policy_override))
  try:
    if not (os.path.exists(os.path.join(policy_dir, "summary.json"))
            and json.load(open(os.path.join(policy_dir, "summary.json")))["finished"]):
      print(f"training the candidate source in {policy_dir}", file=sys.stderr)
      runner.exit_unless_finished(runner.train(spec, policy_dir, keep_checkpoints=True),
                                  policy_dir, "the candidate run")
    spec = runner.RunSpec(**runner.read_spec(policy_dir))
    config, _, agent = runner.build(spec)
    env = envs.make(FLAGS.env, episode_length=FLAGS.horizon)
    policy_net, min_std = policy_network(spec.agent, config, env)
  except (ValueError, runner.RunError, envs.EnvError) as e:
    _fail(e)
  except (OSError, KeyError, TypeError) as e:  # a damaged config.json / summary.json
    _fail(f"{policy_dir} cannot be read as a training run: {e}")
  saved = runner.checkpoint_steps(policy_dir)
  stages = [int(s) for s in FLAGS.stages] or [s for s in saved if s > 0]
  missing = sorted(set(stages) - set(saved))
  if missing:
    _fail(f"{policy_dir} has no checkpoints {missing}; saved: {saved} "
          "(train it with --keep_checkpoints)")
  behavior_stage = FLAGS.behavior_stage if FLAGS.behavior_stage is not None else stages[len(stages) // 2]
  if behavior_stage not in saved:
    _fail(f"--behavior_stage={behavior_stage} is not a checkpoint of {policy_dir}: {saved}")

  def params_at(step):
    try:
      return jax.tree.map(lambda x: x[0], runner.load_state(policy_dir, step))
    except CheckpointError as e:
      _fail(f"candidate checkpoint {step} of {policy_dir}: {e}")

  family = candidates.TanhGaussianFamily(policy_net, min_std)
  pool = candidates.make_pool([agent.policy_params(params_at(s)) for s in stages], temps)
  behavior = jax.tree.map(lambda x: x[0], candidates.make_pool(
      [agent.policy_params(params_at(behavior_stage))], [FLAGS.behavior_temperature]))
  num = len(stages) * len(temps)

  keys = dict(zip(("true", "data", "fqe", "ci"), jax.random.split(jax.random.PRNGKey(FLAGS.seed), 4)))
  cache = StageCache(os.path.join(FLAGS.workdir, "stages"), {
      # Where the files are is not what they hold: a moved workdir keeps its stages.
      "flags": {f.name: f.value for f in FLAGS.get_key_flags_for_module(sys.modules[__name__])
                if f.name not in ("workdir", "policy_workdir")},
      "policy_run": runner.read_spec(policy_dir),
      # The candidates' own bytes: another run with the same settings is other candidates.
      "policy_checkpoints": {s: checkpoint_digest(os.path.join(policy_dir, "checkpoints", str(s)))
                             for s in sorted(set(stages) | {behavior_stage})}})

  def true_values():
    print(f"{num} candidates; true values from {FLAGS.true_episodes} episodes each",
          file=sys.stderr)
    t = time.time()
    true_fn = jax.jit(lambda p, k: candidates.true_returns(
        env, family, p, k, FLAGS.true_episodes, FLAGS.horizon, FLAGS.discount))
    returns = true_fn(pool, keys["true"])
    # V(π_b) by the same Monte-Carlo (SharpeRatio@k's baseline, the default threshold).
    b_returns = true_fn(jax.tree.map(lambda x: x[None], behavior), keys["true"])
    return dict(returns=returns, b_returns=b_returns, seconds=time.time() - t)

  tv = cache.get("true_returns", true_values)
  se = lambda r: r.std(1, ddof=1) / np.sqrt(r.shape[1])
  true_returns, b_returns = np.asarray(tv["returns"]), np.asarray(tv["b_returns"])
  true_mean, true_se = true_returns.mean(1), se(true_returns)
  b_mean, b_se = b_returns.mean(1), se(b_returns)
  true_seconds = float(tv["seconds"])

  # The dataset axis is sharded over as many devices as divide it (one per core on a CPU).
  sharding = runner.seed_sharding(FLAGS.num_datasets)
  devices = 1 if sharding is None else len(sharding.mesh.devices.ravel())
  print(f"{FLAGS.num_datasets} datasets x {FLAGS.num_trajectories} trajectories "
        f"on {devices} device(s)", file=sys.stderr)
  collect = jax.jit(lambda k: sweep.collect_datasets(
      env, family, behavior, k, FLAGS.num_datasets, FLAGS.num_trajectories, FLAGS.horizon),
                    out_shardings=sharding)

  def collect_arrays():
    data = collect(keys["data"])
    return {k: getattr(data, k) for k in data_lib.ARRAYS}

  datasets = jax.device_put(data_lib.LoggedData(**cache.get("datasets", collect_arrays)), sharding)
  return dict(env=env, family=family, pool=pool, behavior=behavior, stages=stages,
              behavior_stage=behavior_stage, policy_dir=policy_dir, spec=spec, num=num,
              ks=tuple(range(1, num + 1)), keys=keys, true_mean=true_mean, true_se=true_se,
              true_returns=true_returns, behavior_returns=b_returns[0],
              behavior_value=float(b_mean[0]), behavior_value_se=float(b_se[0]),
              true_seconds=true_seconds, datasets=datasets,
              behavior_values=np.asarray(sweep.behavior_values(datasets, FLAGS.discount)),
              sharding=sharding, devices=devices, deterministic=deterministic, cache=cache)


def run(temps, deterministic):
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import numpy as np

  from evaluation import data as data_lib, plots, sweep
  from experiments.strict_json import clean
  from evaluation.ope import CD_ESTIMATORS, ESTIMATORS, FQEConfig

  t_start = time.time()
  ctx = prepare(temps, deterministic)
  (family, pool, stages, behavior_stage, policy_dir, spec, num, ks, true_mean, true_se,
   behavior_value, behavior_value_se, true_seconds, datasets, behavior_values, sharding,
   devices) = (ctx[k] for k in (
       "family", "pool", "stages", "behavior_stage", "policy_dir", "spec", "num", "ks",
       "true_mean", "true_se", "behavior_value", "behavior_value_se", "true_seconds",
       "datasets", "behavior_values", "sharding", "devices"))
  k_fqe, k_ci = ctx["keys"]["fqe"], ctx["keys"]["ci"]

  fqe_config = FQEConfig(steps_per_stage=FLAGS.fqe_steps_per_stage)
  print(f"FQE for {FLAGS.num_datasets} x {num} (dataset, candidate) pairs", file=sys.stderr)
  inputs_fn = jax.jit(jax.vmap(lambda d, k: sweep.ratios_and_q(
      d, family, pool, FLAGS.discount, k, deterministic, FLAGS.bandwidth, fqe_config,
      FLAGS.kernel, FLAGS.kernel_truncate)))
  cache = ctx["cache"]

  def fqe():
    t = time.time()
    fqe_keys = jax.random.split(k_fqe, FLAGS.num_datasets)
    if sharding is not None:
      fqe_keys = jax.device_put(fqe_keys, sharding)
    out = jax.block_until_ready(inputs_fn(datasets, fqe_keys))
    return {"inputs": out, "seconds": time.time() - t}

  stage = cache.get("fqe", fqe)
  inputs, fqe_seconds = stage["inputs"], float(stage["seconds"])

  estimate_fn = jax.jit(jax.vmap(lambda d, i: sweep.estimate(d, i, FLAGS.discount)))
  jax.block_until_ready(estimate_fn(datasets, inputs))
  t = time.time()
  estimates = jax.block_until_ready(estimate_fn(datasets, inputs))
  estimate_seconds = time.time() - t
  ci_fn = jax.jit(jax.vmap(lambda d, i, k: sweep.intervals(d, i, FLAGS.discount, k, FLAGS.alpha,
                                                           FLAGS.num_bootstrap)))

  def intervals():
    t = time.time()
    out = ci_fn(datasets, inputs, jax.random.split(k_ci, FLAGS.num_datasets))
    return {"cis": jax.device_get(out), "seconds": time.time() - t}

  stage = cache.get("intervals", intervals)
  cis, interval_seconds = stage["cis"], float(stage["seconds"])
  threshold = behavior_value if FLAGS.safety_threshold is None else FLAGS.safety_threshold
  scores = jax.device_get(sweep.assess(estimates, jnp.asarray(true_mean), behavior_value, ks,
                                       threshold, FLAGS.clip_sharpe_ratio))
  estimates = jax.device_get(estimates)
  means = sweep.summarize(estimates, scores)
  lower = jax.device_get(sweep.lower_bounds(cis))
  by_lower = sweep.summarize(lower, jax.device_get(sweep.assess(
      lower, jnp.asarray(true_mean), behavior_value, ks, threshold, FLAGS.clip_sharpe_ratio)))
  coverage = sweep.interval_summary(cis, true_mean)

  names = [n for n in ESTIMATORS if n in estimates]

  # Cumulative-distribution OPE: every candidate's return CDF, its risk functionals, and
  # selection by estimated CVaR / lower quartile (scored against the Monte-Carlo ones).
  logged_returns = jax.vmap(lambda d: data_lib.discounted_returns(d, FLAGS.discount))(datasets)
  thresholds = jnp.asarray(sweep.risk_thresholds(
      np.concatenate([ctx["true_returns"].ravel(), ctx["behavior_returns"].ravel(),
                      np.asarray(logged_returns).ravel()]), FLAGS.cdf_points))
  cdfs = jax.jit(jax.vmap(lambda d, i: sweep.cumulative(d, i, FLAGS.discount, thresholds)))(
      datasets, inputs)
  risk = jax.device_get(sweep.risk_assessment(
      cdfs, thresholds, jnp.asarray(ctx["true_returns"]), jnp.asarray(ctx["behavior_returns"]),
      ks, FLAGS.cvar_alpha))
  cdfs = jax.device_get(cdfs)
  risk_choice = {f"{n}/{f}": risk["estimated"][n][f] for n in cdfs for f in ("cvar", "lower_quartile")}
  by_risk = sweep.summarize(risk_choice, risk["selection"])

  summary = {
      "env": FLAGS.env, "agent": spec.agent, "policy_workdir": policy_dir,
      "horizon": FLAGS.horizon, "discount": FLAGS.discount, "deterministic_targets": deterministic,
      "bandwidth": FLAGS.bandwidth if deterministic else None,
      "kernel": FLAGS.kernel if deterministic else None,
      "kernel_truncate": FLAGS.kernel_truncate if deterministic else None,
      "fqe": {"method": "backward induction", "steps_per_stage": FLAGS.fqe_steps_per_stage,
              "total_steps": fqe_config.total_steps(FLAGS.horizon)},
      "num_datasets": FLAGS.num_datasets, "num_trajectories": FLAGS.num_trajectories, "ks": list(ks),
      "candidates": [{"stage": s, "temperature": tt, "true_value": float(true_mean[i * len(temps) + j]),
                      "true_value_se": float(true_se[i * len(temps) + j])}
                     for i, s in enumerate(stages) for j, tt in enumerate(temps)],
      "behavior": {"stage": behavior_stage, "temperature": FLAGS.behavior_temperature,
                   "value": behavior_value, "value_se": behavior_value_se,
                   "logged_mean_return_per_dataset": behavior_values.tolist()},
      "baselines": {"sharpe_ratio": "V(pi_b) by Monte-Carlo (behavior.value)",
                    "threshold": threshold if FLAGS.safety_threshold is not None
                    else "V(pi_b) by Monte-Carlo (behavior.value)"},
      "estimators": {}, "timing": {
          "true_values_seconds": true_seconds, "fqe_seconds": fqe_seconds,
          "estimate_seconds": estimate_seconds, "devices": devices,
          "estimates_per_second": len(names) * num * FLAGS.num_datasets / estimate_seconds,
          "wall_seconds": None}}
  for n in names:
    per = {m: np.asarray(v) for m, v in scores[n].items()}
    summary["estimators"][n] = {
        "estimates": np.asarray(estimates[n]).tolist(),
        "nonfinite_datasets": means[n]["nonfinite_datasets"],
        "metrics_mean": means[n]["metrics_mean"],
        "metrics_per_dataset": per}
  summary["intervals"] = {"alpha": FLAGS.alpha, "num_bootstrap": FLAGS.num_bootstrap,
                          "coverage": coverage,
                          "per_dataset": {n: {ci: np.asarray(v).tolist() for ci, v in cis[n].items()}
                                          for n in names}}
  summary["selection_by_lower_bound"] = {
      n: {"nonfinite_datasets": v["nonfinite_datasets"],
          "metrics_mean": v["metrics_mean"]}
      for n, v in by_lower.items()}
  summary["risk"] = {
      "cvar_alpha": FLAGS.cvar_alpha, "thresholds": np.asarray(thresholds),
      "true": {f: np.asarray(v) for f, v in risk["true"].items()},
      "selection_baseline": "pi_b's value of the functional (Monte-Carlo), as SharpeRatio@k's "
                            "baseline and the Type I/II threshold",
      "estimators": {n: {"abs_error_mean": {f: float(np.mean(v)) for f, v in
                                            risk["abs_error"][n].items()},
                         "nonfinite_datasets": int((~np.isfinite(np.asarray(
                             risk["abs_error"][n]["cvar"]))).sum()),
                         "estimated": {f: np.asarray(v) for f, v in risk["estimated"][n].items()}}
                     for n in cdfs},
      "selection": {n: {"nonfinite_datasets": v["nonfinite_datasets"],
                        "metrics_mean": v["metrics_mean"]} for n, v in by_risk.items()}}
  summary["timing"]["interval_seconds"] = interval_seconds
  summary["timing"]["wall_seconds"] = time.time() - t_start
  summary = clean(summary)
  with open(os.path.join(FLAGS.workdir, "ope_summary.json"), "w") as f:
    json.dump(summary, f, indent=1, allow_nan=False)

  with open(os.path.join(FLAGS.workdir, "ope_table.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["estimator", "mse", "relative_error", "rank_correlation", "regret@1",
                "type_i_error_rate", "type_ii_error_rate"] + [f"sharpe_ratio@{k}" for k in ks[1:]])
    for n in names:
      mm = summary["estimators"][n]["metrics_mean"]
      w.writerow([n] + [mm[m] for m in ("mse", "relative_error", "rank_correlation")]
                 + [mm["regret@k"][0], mm["type_i_error_rate"], mm["type_ii_error_rate"]]
                 + mm["sharpe_ratio@k"][1:])

  title = f"{FLAGS.env}: {num} candidates, {FLAGS.num_datasets} datasets"
  plots.sharpe_ratio_vs_k(list(ks[1:]), {n: np.asarray(scores[n]["sharpe_ratio@k"])[:, 1:] for n in names},
                          os.path.join(FLAGS.workdir, "sharpe_ratio_at_k.png"), title)
  shown = sorted({0, num // 2, num - 1})
  plots.return_cdfs(np.asarray(thresholds), np.asarray(risk["true_cdf"]),
                    {n: np.asarray(c)[0] for n, c in cdfs.items()}, shown,
                    [f"candidate {p} (true value {float(true_mean[p]):.2f})" for p in shown],
                    os.path.join(FLAGS.workdir, "return_cdfs.png"),
                    f"{FLAGS.env}: return CDFs, dataset 0")
  plots.estimated_vs_true(true_mean, {n: estimates[n] for n in names}, behavior_value,
                          os.path.join(FLAGS.workdir, "estimated_vs_true.png"), title)

  first = jax.tree.map(lambda x: x[0], datasets)
  first = data_lib.with_metadata(first, env=FLAGS.env, discount=FLAGS.discount, seed=FLAGS.seed,
                                 behavior_policy=f"{policy_dir}@{behavior_stage},T={FLAGS.behavior_temperature}")
  data_lib.save(first, os.path.join(FLAGS.workdir, "logged", "dataset_0"))
  extra = {}
  if deterministic:
    extra["target_action"] = np.asarray(jax.vmap(lambda c: family.mean_action(c, first.obs))(pool))
  np.savez_compressed(os.path.join(FLAGS.workdir, "logged", "ope_inputs_0.npz"),
                      **{k: np.asarray(v[0]) for k, v in inputs.items()}, **extra,
                      true_values=true_mean, bandwidth=FLAGS.bandwidth, discount=FLAGS.discount,
                      **{f"estimate_{n}": np.asarray(estimates[n][0]) for n in names})

  print(f"\n{title}; V(pi_b) {behavior_value:.2f} (Monte-Carlo), logged mean return "
        f"{behavior_values.mean():.2f}")
  print("| estimator | non-finite datasets | MSE | rank corr | regret@1 | "
        + " | ".join(f"SR@{k}" for k in ks[1:4]) + " |")
  print("|---" * (5 + len(ks[1:4])) + "|")
  for n in names:
    mm = summary["estimators"][n]["metrics_mean"]
    fmt = lambda x: "nan" if x is None else x if isinstance(x, str) else f"{x:.3g}"
    print(f"| {n} | {summary['estimators'][n]['nonfinite_datasets']} | {fmt(mm['mse'])} | {fmt(mm['rank_correlation'])} | {fmt(mm['regret@k'][0])} | "
          + " | ".join(fmt(x) for x in mm["sharpe_ratio@k"][1:4]) + " |")
  print(f"\n{100 * (1 - FLAGS.alpha):.0f}% interval coverage of the true values (mean width)")
  print("| estimator | " + " | ".join(sorted(coverage[names[0]])) + " |")
  print("|---" * (1 + len(coverage[names[0]])) + "|")
  for n in names:
    print(f"| {n} | " + " | ".join(f"{c['coverage']:.2f} ({c['mean_width']:.3g})"
                                   for _, c in sorted(coverage[n].items())) + " |")
  print(f"\nreturn distributions (cumulative-distribution OPE, {FLAGS.cdf_points} thresholds): "
        f"mean |error| over candidates and datasets; selection by estimated CVaR_{FLAGS.cvar_alpha}")
  print("| estimator | mean | CVaR | lower quartile | IQR | regret@1 by CVaR | "
        "SharpeRatio@2 by CVaR |")
  print("|---" * 7 + "|")
  for n in [n for n in CD_ESTIMATORS if n in cdfs]:
    e = summary["risk"]["estimators"][n]["abs_error_mean"]
    sel = summary["risk"]["selection"][f"{n}/cvar"]["metrics_mean"]
    sharpe = sel["sharpe_ratio@k"][1] if len(ks) > 1 else None
    print(f"| {n} | {fmt(e['mean'])} | {fmt(e['cvar'])} | {fmt(e['lower_quartile'])} | "
          f"{fmt(e['interquartile_range'])} | {fmt(sel['regret@k'][0])} | {fmt(sharpe)} |")
  print(f"timing: FQE {fqe_seconds:.1f}s, intervals {interval_seconds:.1f}s, estimators {estimate_seconds * 1e3:.1f} ms "
        f"({summary['timing']['estimates_per_second']:,.0f} estimates/s), wall {summary['timing']['wall_seconds']:.0f}s")


if __name__ == "__main__":
  app.run(main)
