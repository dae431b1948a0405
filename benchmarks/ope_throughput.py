r"""Throughput of the OPE estimators: estimators x candidates x data seeds per second.

    python -m benchmarks.ope_throughput --workdir=/tmp/ope_det --num_seeds=8,64,512

Reads the first logged dataset and the estimators' inputs of an `experiments.ope_sweep`
workdir (logged/dataset_0.npz, logged/ope_inputs_0.npz: log-ratios and FQE's Q̂, V̂ of
P candidates), draws S bootstrap resamples of its trajectories (the data seeds) and
times one jitted call that evaluates every estimator for every (resample, candidate)
pair (vmapped), best of --repeats after a warm-up. Prints estimates/s per S and, when
`benchmarks/scope_rl_compare.py` has written <workdir>/scope_rl_compare.json, the
ratio to SCOPE-RL's estimates/s on the same data (which it computes one call at a time).
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from evaluation import data as data_lib
from evaluation.ope import ESTIMATORS, estimate_all

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "An ope_sweep workdir.", required=True)
flags.DEFINE_list("num_seeds", ["8", "64", "512"], "Bootstrap resamples S per call.")
flags.DEFINE_integer("repeats", 5, "Timed calls per S (best is reported).")


def bootstrap_estimates(data, inputs, discount, key, num_seeds):
  """Every estimator on `num_seeds` bootstrap resamples of the trajectories.

  data: LoggedData [N, T]; inputs: log_ratio, q_sa, v_s [P, N, T] -> {name: [S, P]}.
  """
  n = data.reward.shape[0]

  def one(k):
    idx = jax.random.randint(k, (n,), 0, n)
    d = jax.tree.map(lambda x: x[idx], data)
    return estimate_all(d, inputs["log_ratio"][:, idx], discount,
                        inputs["q_sa"][:, idx], inputs["v_s"][:, idx])

  return jax.vmap(one)(jax.random.split(key, num_seeds))


def main(argv):
  del argv
  data = data_lib.load(os.path.join(FLAGS.workdir, "logged", "dataset_0"))
  raw = np.load(os.path.join(FLAGS.workdir, "logged", "ope_inputs_0.npz"))
  inputs = {k: jnp.asarray(raw[k]) for k in ("log_ratio", "q_sa", "v_s")}
  discount = float(raw["discount"])
  num_cand = inputs["log_ratio"].shape[0]
  scope = None
  scope_path = os.path.join(FLAGS.workdir, "scope_rl_compare.json")
  if os.path.exists(scope_path):
    with open(scope_path) as f:
      scope = json.load(f)
  print(f"{FLAGS.workdir}: {num_cand} candidates, {data.reward.shape[0]} trajectories x "
        f"{data.reward.shape[1]} steps, {len(ESTIMATORS)} estimators, {jax.devices()[0].platform}")
  print("| S | estimates per call | ms per call | estimates/s |"
        + (" SCOPE-RL estimates/s | ratio |" if scope else ""))
  print("|---|---|---|---|" + ("---|---|" if scope else ""))
  rows = []
  for s in (int(x) for x in FLAGS.num_seeds):
    fn = jax.jit(lambda k, s=s: bootstrap_estimates(data, inputs, discount, k, s))
    jax.block_until_ready(fn(jax.random.PRNGKey(0)))
    times = []
    for r in range(FLAGS.repeats):
      t = time.perf_counter()
      jax.block_until_ready(fn(jax.random.PRNGKey(r + 1)))
      times.append(time.perf_counter() - t)
    count = s * num_cand * len(ESTIMATORS)
    rate = count / min(times)
    row = {"num_seeds": s, "estimates": count, "seconds": min(times), "estimates_per_second": rate}
    line = f"| {s} | {count:,} | {min(times) * 1e3:.1f} | {rate:,.0f} |"
    if scope:
      theirs = scope["scope_estimates_per_second_all"]
      row["scope_estimates_per_second"], row["ratio"] = theirs, rate / theirs
      line += f" {theirs:,.0f} | {rate / theirs:.0f}x |"
    rows.append(row)
    print(line)
  with open(os.path.join(FLAGS.workdir, "ope_throughput.json"), "w") as f:
    json.dump(rows, f, indent=1)


if __name__ == "__main__":
  app.run(main)
