r"""Offline training speed: ours (1 seed, N vmapped seeds) vs d3rlpy 2.8.1, and PRDC's search.

    python -m benchmarks.offline_speed --dataset=runs/datasets/hopper/medium \
        --d3rlpy_python=runs/d3rlpy_venv/bin/python

Times gradient steps per second of TD3+BC and IQL with the same networks (256-256 ReLU)
and batch (256) on the same dataset:
  * ours: one jitted call of `--steps` gradient steps (compile excluded, best of
    `--repeats`), for 1 seed and for each --seeds count vmapped in one call (steps/s
    counts one seed's steps × seeds);
  * d3rlpy's `fit` for `--steps` steps in its own virtualenv (benchmarks/d3rlpy_side.py,
    no jax there), its build and a warm-up fit excluded;
  * PRDC's exact nearest-neighbour search (algorithms/common/nearest.py): one query batch
    of 256 against `--search_points` random points of the dataset's (β s, a) width, and a
    PRDC gradient step with the dataset's index (every 2nd step searches).
Without --dataset a random dataset of `--obs_size`/`--action_size` (brax/hopper's 11 / 3)
with 1000 trajectories of 1000 steps is used. Prints a markdown table; --out writes JSON.
"""

import dataclasses
import json
import os
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from algorithms import iql, prdc, td3_bc
from algorithms.common import nearest
from evaluation import data as data_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", None, "Logged-data path (no extension); default: random, hopper-sized.")
flags.DEFINE_integer("obs_size", 11, "Observation size of the random dataset.")
flags.DEFINE_integer("action_size", 3, "Action size of the random dataset.")
flags.DEFINE_integer("steps", 2000, "Gradient steps per timing (one seed).")
flags.DEFINE_integer("prdc_steps", 100, "PRDC's gradient steps per timing (it searches).")
flags.DEFINE_list("seeds", ["8"], "Vmapped seed counts to time besides 1.")
flags.DEFINE_list("agents", ["td3_bc", "iql"], "Agents compared with d3rlpy.")
flags.DEFINE_integer("repeats", 2, "Timed calls per figure; the best is kept.")
flags.DEFINE_string("d3rlpy_python", None, "Python of a virtualenv with d3rlpy 2.8.1.")
flags.DEFINE_integer("search_points", 1_000_000, "Index size for the nearest-neighbour timing.")
flags.DEFINE_string("out", None, "Write the figures as JSON here.")


class _Sizes:
  """What the agents read of an env (sizes only)."""

  def __init__(self, obs_size, action_size):
    self.observation_size, self.action_size = obs_size, action_size


def random_dataset(obs_size: int, action_size: int, n: int = 1000, t: int = 1000) -> dict:
  """Logged-data arrays [n, t, ...] of random numbers (speed only)."""
  rng = np.random.default_rng(0)
  truncated = np.zeros((n, t), bool)
  truncated[:, -1] = True
  return {"obs": rng.normal(size=(n, t, obs_size)).astype(np.float32),
          "action": rng.uniform(-1, 1, (n, t, action_size)).astype(np.float32),
          "reward": rng.normal(size=(n, t)).astype(np.float32),
          "terminated": np.zeros((n, t), bool), "truncated": truncated,
          "behavior_log_prob": np.zeros((n, t), np.float32)}


def steps_per_second(make_agent, config, sizes, data, seeds: int, steps: int) -> float:
  """One seed's gradient steps/s × seeds, `steps` steps per seed in one call."""
  agent = make_agent(dataclasses.replace(config, grad_steps=steps), sizes, data)
  keys = jax.random.split(jax.random.PRNGKey(0), seeds)
  init = jax.jit(jax.vmap(agent.init))(keys)
  update = jax.jit(jax.vmap(lambda s, d: agent.update(s, d), in_axes=(0, None)))
  jax.block_until_ready(update(init, agent.data))           # compile
  best = float("inf")
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    jax.block_until_ready(update(init, agent.data))
    best = min(best, time.perf_counter() - start)
  return steps * seeds / best


def search_seconds(width: int) -> float:
  """Seconds of one exact search: 256 queries against FLAGS.search_points points."""
  rng = np.random.default_rng(1)
  chunks, valid = nearest.pad_index(
      jnp.asarray(rng.normal(size=(FLAGS.search_points, width)), jnp.float32), 65536)
  queries = jnp.asarray(rng.normal(size=(256, width)), jnp.float32)
  search = jax.jit(nearest.nearest_in_chunks)
  jax.block_until_ready(search(queries, chunks, valid))
  best = float("inf")
  for _ in range(max(FLAGS.repeats, 3)):
    start = time.perf_counter()
    jax.block_until_ready(search(queries, chunks, valid))
    best = min(best, time.perf_counter() - start)
  return best


def d3rlpy_steps_per_second(agent: str, path: str) -> float:
  """d3rlpy's gradient steps/s, from benchmarks/d3rlpy_side.py in its virtualenv."""
  side = os.path.join(os.path.dirname(os.path.abspath(__file__)), "d3rlpy_side.py")
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "speed.json")
    device = "cuda:0" if jax.default_backend() == "gpu" else "cpu:0"   # the device ours uses
    done = subprocess.run([FLAGS.d3rlpy_python, side, "--mode=speed", f"--algo={agent}",
                           f"--dataset={path}", f"--steps={FLAGS.steps}", f"--out={out}",
                           f"--device={device}"],
                          capture_output=True, text=True, check=False)
    if done.returncode:
      raise SystemExit(f"error: d3rlpy_side.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    with open(out) as f:
      return json.load(f)["steps_per_second"]


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    if FLAGS.dataset:
      logged = data_lib.load(FLAGS.dataset)
      data = {k: np.asarray(getattr(logged, k)) for k in data_lib.ARRAYS}
      path = FLAGS.dataset
    else:
      data = random_dataset(FLAGS.obs_size, FLAGS.action_size)
      path = os.path.join(tmp, "random")
      data_lib.save(data_lib.LoggedData(**data, metadata={"env": "random"}), path)
    sizes = _Sizes(data["obs"].shape[-1], data["action"].shape[-1])
    configs = {"td3_bc": (td3_bc.make_agent, td3_bc.TD3BCConfig()),
               "iql": (iql.make_agent, iql.IQLConfig(total_steps=10 ** 6)),
               "prdc": (prdc.make_agent, prdc.PRDCConfig())}
    rows, figures = [], {"device": jax.devices()[0].device_kind, "steps": FLAGS.steps,
                         "transitions": int(data_lib.valid_mask(
                             data["terminated"], data["truncated"]).sum())}
    for name in FLAGS.agents + ["prdc"]:
      make, config = configs[name]
      steps = FLAGS.prdc_steps if name == "prdc" else FLAGS.steps
      ours = {s: steps_per_second(make, config, sizes, data, s, steps)
              for s in [1] + [int(x) for x in FLAGS.seeds]}
      theirs = (d3rlpy_steps_per_second(name, path)
                if FLAGS.d3rlpy_python and name != "prdc" else None)
      figures[name] = {"ours": ours, "d3rlpy": theirs}
      for s, rate in ours.items():
        ratio = f"{rate / theirs:.2f}x" if theirs else "—"
        rows.append(f"| {name} | {s} | {rate:,.0f} | {theirs or float('nan'):,.0f} | {ratio} |")
    width = sizes.observation_size + sizes.action_size
    figures["search_seconds"] = search_seconds(width)
  print(f"\n{figures['transitions']:,} transitions, {FLAGS.steps} steps per timing, "
        f"{figures['device']}\n")
  print("| agent | seeds | ours steps/s | d3rlpy steps/s (1 seed) | ours / d3rlpy |")
  print("|---|---|---|---|---|")
  print("\n".join(rows))
  print(f"\nexact nearest-neighbour search, 256 queries x {FLAGS.search_points:,} points "
        f"of width {width}: {1e3 * figures['search_seconds']:.1f} ms")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(figures, f, indent=1)


if __name__ == "__main__":
  app.run(main)
