r"""The whole OPE pipeline, ours against SCOPE-RL 0.2.1's, on the same data and candidates.

    python -m benchmarks.ope_pipeline --workdir=/tmp/ope_pipe --policy_workdir=/tmp/ope/policy \
        --temperatures=0 [--scope_python=/tmp/venv-scope/bin/python]

Takes every flag of `experiments.ope_sweep` (the candidates must be deterministic,
--temperatures=0: SCOPE-RL's continuous OPE evaluates deterministic policies, through
its action kernel). Steps:
  1. `ope_sweep.prepare`: candidates, true values, V(π_b), S logged datasets (shared, untimed).
  2. Export of the datasets, the candidates' weights and the settings to <workdir>/pipeline/.
  3. Ours: one jitted, vmapped call per (dataset x candidate) grid that runs FQE, the 7
     estimators and every metric; timed once with compilation and as the best of
     --repeats further calls, and in parts (FQE; estimators + metrics).
  4. SCOPE-RL in its own virtualenv (`benchmarks/scope_rl_pipeline.py`: `CreateOPEInput`
     FQE + `OffPolicyEvaluation` + `OffPolicySelection`), one dataset at a time.
  5. Prints both wall times and their ratio; writes <workdir>/ope_pipeline.json.

Same FQE network (64-64), Adam learning rate, batch (N, the trajectories: our backward
induction fits one step of the horizon at a time, full batch) and gradient steps
(steps_per_stage x T per candidate) on both sides. The methods differ: ours is
backward induction over t, d3rlpy's FQE the infinite-horizon form with a target
network every 100 steps; the timing compares equal work, not equal estimates.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

from experiments import ope_sweep  # noqa: F401  (defines the sweep's flags)

FLAGS = flags.FLAGS
flags.DEFINE_string("scope_python", "/tmp/venv-scope/bin/python",
                    "Python of a virtualenv with scope-rl==0.2.1 (empty: skip SCOPE-RL).")
flags.DEFINE_integer("repeats", 3, "Timed calls of ours after the first (best is kept).")
flags.DEFINE_integer("scope_datasets", 0, "Datasets SCOPE-RL runs (0: all); its time is scaled to all.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(ctx, out_dir, fqe_config):
  """Writes datasets.npz, policies.npz and meta.json for benchmarks/scope_rl_pipeline.py."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  os.makedirs(out_dir, exist_ok=True)
  data = ctx["datasets"]
  np.savez(os.path.join(out_dir, "datasets.npz"),
           **{k: np.asarray(getattr(data, k)) for k in ("obs", "action", "reward", "terminated",
                                                        "truncated", "behavior_log_prob")})
  arrays, num_layers = {}, None
  for p in range(ctx["num"]):
    cand = jax.tree.map(lambda x, p=p: np.asarray(x[p]), ctx["pool"])
    dense = cand["params"]["policy"]["params"]
    dense = dense.get("MLP_0", dense)   # MeanAndFreeScale: the means' MLP (candidates act on it)
    names = sorted(dense, key=lambda n: int(n.split("_")[-1]))
    num_layers = len(names)
    for i, name in enumerate(names):
      arrays[f"p{p}_kernel{i}"] = dense[name]["kernel"]
      arrays[f"p{p}_bias{i}"] = dense[name]["bias"]
    arrays[f"p{p}_obs_mean"] = np.asarray(cand["params"]["obs_stats"].mean)
    arrays[f"p{p}_obs_std"] = np.asarray(cand["params"]["obs_stats"].std)
  np.savez(os.path.join(out_dir, "policies.npz"), **arrays)
  n, horizon = data.reward.shape[1:]
  threshold = ctx["behavior_value"] if FLAGS.safety_threshold is None else FLAGS.safety_threshold
  meta = {"num_candidates": ctx["num"], "num_layers": num_layers,
          "activation": ctx["family"].policy_net.activation, "action_size": int(data.action.shape[-1]),
          "obs_clip": 10.0, "gamma": FLAGS.discount, "bandwidth": FLAGS.bandwidth,
          "fqe": {"hidden": list(fqe_config.hidden), "learning_rate": fqe_config.learning_rate,
                  "batch_size": int(min(n, fqe_config.batch_size)),
                  "n_steps": fqe_config.total_steps(horizon)},
          "true_values": [float(v) for v in ctx["true_mean"]],
          "behavior_value": ctx["behavior_value"], "safety_threshold": float(threshold),
          "max_topk": ctx["num"], "seed": FLAGS.seed}
  with open(os.path.join(out_dir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
  return meta


def time_ours(ctx, fqe_config):
  """(seconds with compilation, best of --repeats, FQE part, estimators+metrics part, estimates)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  from evaluation import sweep  # pylint: disable=import-outside-toplevel

  family, pool, datasets = ctx["family"], ctx["pool"], ctx["datasets"]
  threshold = ctx["behavior_value"] if FLAGS.safety_threshold is None else FLAGS.safety_threshold
  true = jnp.asarray(ctx["true_mean"])

  def fqe_part(data, keys):
    return jax.vmap(lambda d, k: sweep.ratios_and_q(
        d, family, pool, FLAGS.discount, k, True, FLAGS.bandwidth, fqe_config, FLAGS.kernel,
        FLAGS.kernel_truncate))(data, keys)

  def rest(data, inputs):
    est = jax.vmap(lambda d, i: sweep.estimate(d, i, FLAGS.discount))(data, inputs)
    return est, sweep.assess(est, true, ctx["behavior_value"], ctx["ks"], threshold,
                             FLAGS.clip_sharpe_ratio)

  whole = jax.jit(lambda d, k: rest(d, fqe_part(d, k)))
  keys = jax.random.split(ctx["keys"]["fqe"], FLAGS.num_datasets)
  if ctx["sharding"] is not None:
    keys = jax.device_put(keys, ctx["sharding"])

  def timed(fn, *args):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - t, out

  first, (estimates, _) = timed(whole, datasets, keys)
  best = min(timed(whole, datasets, keys)[0] for _ in range(FLAGS.repeats))
  fqe_fn, rest_fn = jax.jit(fqe_part), jax.jit(rest)
  _, inputs = timed(fqe_fn, datasets, keys)
  fqe_best = min(timed(fqe_fn, datasets, keys)[0] for _ in range(FLAGS.repeats))
  timed(rest_fn, datasets, inputs)
  rest_best = min(timed(rest_fn, datasets, inputs)[0] for _ in range(FLAGS.repeats))
  return first, best, fqe_best, rest_best, jax.device_get(estimates)


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  import numpy as np  # pylint: disable=import-outside-toplevel

  from evaluation.ope import FQEConfig  # pylint: disable=import-outside-toplevel

  temps, deterministic = ope_sweep.check_flags()
  if not deterministic:
    sys.exit("error: --temperatures must be 0: SCOPE-RL evaluates deterministic continuous policies")
  ctx = ope_sweep.prepare(temps, True)
  fqe_config = FQEConfig(steps_per_stage=FLAGS.fqe_steps_per_stage)
  out_dir = os.path.join(FLAGS.workdir, "pipeline")
  meta = export(ctx, out_dir, fqe_config)
  s, p = FLAGS.num_datasets, ctx["num"]
  print(f"ours: {s} datasets x {p} candidates, FQE {meta['fqe']['n_steps']} steps of batch "
        f"{meta['fqe']['batch_size']} each", file=sys.stderr)
  first, best, fqe_best, rest_best, estimates = time_ours(ctx, fqe_config)
  result = {"num_datasets": s, "num_candidates": p, "meta": meta, "devices": ctx["devices"],
            "ours": {"first_call_seconds": first, "best_seconds": best, "fqe_seconds": fqe_best,
                     "estimators_and_metrics_seconds": rest_best,
                     "estimates": {k: np.asarray(v).tolist() for k, v in estimates.items()}}}
  if FLAGS.scope_python:
    cmd = [FLAGS.scope_python, os.path.join(ROOT, "benchmarks", "scope_rl_pipeline.py"), f"--dir={out_dir}"]
    if FLAGS.scope_datasets:
      cmd.append(f"--num_datasets={FLAGS.scope_datasets}")
    print("SCOPE-RL: " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=out_dir)
    with open(os.path.join(out_dir, "scope_rl_pipeline.json")) as f:
      scope = json.load(f)
    ran = len(scope["per_dataset"])
    scale = s / ran
    totals = {k: v * scale for k, v in scope["totals"].items()}
    result["scope_rl"] = {"datasets_run": ran, "scaled_to_all_datasets": totals,
                          "versions": scope.get("versions")}
    result["ratio"] = {"whole": totals["total_seconds"] / best,
                       "whole_with_compilation": totals["total_seconds"] / first,
                       "fqe": totals["fqe_seconds"] / fqe_best,
                       "estimators_and_selection": (totals["estimators_seconds"]
                                                    + totals["selection_seconds"]) / rest_best}
  with open(os.path.join(FLAGS.workdir, "ope_pipeline.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(f"\n{FLAGS.env}: {s} datasets x {p} deterministic candidates, {FLAGS.num_trajectories} x "
        f"{FLAGS.horizon} steps, FQE {meta['fqe']['n_steps']} steps x batch {meta['fqe']['batch_size']}")
  print("| | FQE s | estimators + metrics s | whole s |")
  print("|---|---|---|---|")
  print(f"| ours (best of {FLAGS.repeats}) | {fqe_best:.2f} | {rest_best:.3f} | {best:.2f} |")
  print(f"| ours, first call (with compilation) | | | {first:.2f} |")
  if "scope_rl" in result:
    t = result["scope_rl"]["scaled_to_all_datasets"]
    print(f"| SCOPE-RL ({result['scope_rl']['datasets_run']} of {s} datasets, scaled) | "
          f"{t['fqe_seconds']:.1f} | {t['estimators_seconds'] + t['selection_seconds']:.2f} | "
          f"{t['total_seconds']:.1f} |")
    r = result["ratio"]
    print(f"| SCOPE-RL / ours | {r['fqe']:.1f}x | {r['estimators_and_selection']:.1f}x | "
          f"**{r['whole']:.1f}x** ({r['whole_with_compilation']:.1f}x with our compilation) |")


if __name__ == "__main__":
  app.run(main)
