r"""Coverage of the OPE confidence intervals on the tiny MDP whose values are exact.

    python -m benchmarks.ope_interval_coverage --num_datasets=400 --num_trajectories=400

Draws M datasets of the tiny two-state MDP of the tests (tests/evaluation/tiny_mdp.py:
continuous actions, horizon 4, γ = 0.9, values by backward induction), for three target
policies, with a deliberately wrong Q̂ (random table, V̂ = E_{π_e} Q̂, so DR is unbiased
but not exact), computes every interval of every estimator in one jitted call and prints
the share of datasets whose interval holds the exact value, with its binomial standard
error. DM is left out: its interval holds only the sampling noise of V̂(s₀), not the
bias of a wrong Q̂. Writes the table to --out as JSON when given.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from evaluation.ope import INTERVALS, confidence_intervals
from evaluation.ope import estimators as est
from tests.evaluation import tiny_mdp as mdp
from tests.evaluation.test_estimators import BEHAVIOR, TARGETS, _wrong_q

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_datasets", 400, "Datasets M.")
flags.DEFINE_integer("num_trajectories", 400, "Trajectories per dataset.")
flags.DEFINE_float("alpha", 0.05, "Intervals at level 1 - alpha.")
flags.DEFINE_string("out", None, "JSON output path.")


def main(argv):
  del argv
  m, n = FLAGS.num_datasets, FLAGS.num_trajectories
  parts = []
  for seed in range(m):
    data, states = mdp.sample(seed, n, *BEHAVIOR)
    lr = jnp.stack([est.log_ratio(data, mdp.target_log_prob(data, states, *t)) for t in TARGETS])
    qv = [_wrong_q(data, states, *t, seed=100 + i) for i, t in enumerate(TARGETS)]
    parts.append((data, lr, jnp.stack([x[0] for x in qv]), jnp.stack([x[1] for x in qv])))
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *parts)
  f = jax.jit(jax.vmap(lambda d, lr, q, v, k: confidence_intervals(d, lr, mdp.GAMMA, k, q, v,
                                                                    FLAGS.alpha)))
  out = jax.device_get(f(*stacked, jax.random.split(jax.random.PRNGKey(0), m)))
  truth = np.array([mdp.exact(*t)[0][0, 0] for t in TARGETS])
  se = np.sqrt((1 - FLAGS.alpha) * FLAGS.alpha / m)
  print(f"{100 * (1 - FLAGS.alpha):.0f}% intervals, {m} datasets x {n} trajectories: share covering "
        f"V(π_e) for targets 1 / 2 / 3 (binomial SE {se:.3f}); mean width in brackets")
  print("| estimator | " + " | ".join(INTERVALS) + " |")
  print("|---" * (1 + len(INTERVALS)) + "|")
  table = {}
  for name in ("tis", "pdis", "dr", "sntis", "snpdis", "sndr"):
    cells = []
    for ci in INTERVALS:
      lo, hi = out[name][ci][..., 0], out[name][ci][..., 1]
      cov = ((lo <= truth) & (truth <= hi)).mean(0)
      width = float(np.mean(hi - lo))
      table.setdefault(name, {})[ci] = {"coverage": cov.tolist(), "mean_width": width}
      cells.append(" / ".join(f"{c:.3f}" for c in cov) + f" ({width:.2f})")
    print(f"| {name} | " + " | ".join(cells) + " |")
  if FLAGS.out:
    with open(FLAGS.out, "w") as fh:
      json.dump({"num_datasets": m, "num_trajectories": n, "alpha": FLAGS.alpha,
                 "true_values": truth.tolist(), "coverage": table}, fh, indent=1)


if __name__ == "__main__":
  app.run(main)
