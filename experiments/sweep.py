r"""Hyperparameter sweeps: a grid (or random draws) over config fields × seeds.

    python -m experiments.sweep --agent=ppo --env=brax/inverted_pendulum --workdir=runs/sweep \
        --grid='learning_rate=1e-4|3e-4|1e-3|3e-3' --num_seeds=4 --total_steps=200000

Fields:
- `--grid 'key=v1|v2|...'` (several: their Cartesian product) and `--random key=lo:hi`
  (uniform) or `key=log:lo:hi` (log-uniform), `--num_random` draws of every random field
  at once (jax.random, from --seed), crossed with the grid.
- A field whose values do not change array shapes (a float field that the agent builds,
  updates and acts with as a traced value: learning rates, coefficients, clip ranges) is
  *traced*: its points are vmapped with the seeds in one program (`RunSpec.traced`), so a
  sweep of 4 learning rates × 4 seeds is one compiled program of 16 members.
- Any other field (integers, sizes, booleans, strings; or a float that the agent branches
  on in Python) is *static*: each of its values is a separate program. Which is which is
  found by tracing the agent with the field as a traced value (`jax.eval_shape`), and
  printed.
Each program is an `experiments.runner` run in <workdir>/programs/<static values or
"all">: checkpointed, resumable (a finished program is not re-run), its members sharded
over a `jax.sharding` mesh of the devices, diverged members reported.

Multi-host (`--coordinator=HOST:PORT --num_processes=N --process_id=I`):
`jax.distributed.initialize`, then process I trains the programs I, I + N, ... on its own
devices, all into the one shared workdir; after a barrier, process 0 writes the table.

Outputs: <workdir>/sweep.json (per point: its values, the final return of each seed, IQM
and 95% bootstrap CI over seeds, rliable) and sweep.csv; a sensitivity plot per swept
field (sensitivity_<field>.png: final return against the field's value, the IQM over the
seeds of every point with that value, 95% CI).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("agent", "ppo", "Agent (experiments.agents).")
flags.DEFINE_string("env", "brax/inverted_pendulum", "Env name.")
flags.DEFINE_string("workdir", None, "Output directory.")
flags.DEFINE_multi_string("grid", [], "key=v1|v2|...: values of a config field (quote for the "
                          "shell); several form a product.")
flags.DEFINE_multi_string("random", [], "key=lo:hi or key=log:lo:hi: a field drawn at random.")
flags.DEFINE_integer("num_random", 4, "Random draws (with --random).")
flags.DEFINE_multi_string("override", [], "Config override for every point, key=value.")
flags.DEFINE_multi_string("env_arg", [], "Env argument, key=value.")
flags.DEFINE_integer("num_seeds", 4, "Seeds per point.")
flags.DEFINE_integer("total_steps", 100_000, "Env (or gradient) steps per seed.")
flags.DEFINE_integer("num_evals", 5, "Evaluations (and checkpoints) per run.")
flags.DEFINE_integer("eval_episodes", 8, "Episodes per evaluation.")
flags.DEFINE_integer("seed", 0, "PRNG seed (training keys and random draws).")
flags.DEFINE_bool("progress", True, "Show a progress bar per program.")
flags.DEFINE_string("coordinator", None, "Multi-host: the coordinator's HOST:PORT.")
flags.DEFINE_integer("num_processes", 1, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", 0, "Multi-host: this process's index.")


def parse_grid(grid: list[str]) -> dict[str, list[str]]:
  """{key: [value strings]} from 'key=v1|v2|...' entries; ValueError on a bad one."""
  out = {}
  for g in grid:
    key, eq, values = g.partition("=")
    vals = values.split("|")
    if not eq or not key or not all(vals):
      raise ValueError(f"--grid takes key=v1|v2|..., got {g!r}")
    if key in out:
      raise ValueError(f"--grid names {key} twice")
    if len(set(vals)) < len(vals):
      raise ValueError(f"--grid repeats a value in {g!r}")
    out[key] = vals
  return out


def parse_random(random: list[str]) -> dict[str, tuple[bool, float, float]]:
  """{key: (log, lo, hi)} from 'key=lo:hi' / 'key=log:lo:hi'; ValueError on a bad one."""
  out = {}
  for r in random:
    key, eq, spec = r.partition("=")
    parts = spec.split(":")
    log = parts[0] == "log"
    parts = parts[1:] if log else parts
    try:
      lo, hi = (float(p) for p in parts)
    except ValueError:
      raise ValueError(f"--random takes key=lo:hi or key=log:lo:hi, got {r!r}") from None
    if not eq or not key or not lo < hi or (log and lo <= 0):
      raise ValueError(f"--random takes key=lo:hi with lo < hi (and lo > 0 for log), got {r!r}")
    out[key] = (log, lo, hi)
  return out


def random_points(random: dict, num: int, seed: int) -> list[dict[str, str]]:
  """`num` draws of every random field -> [{key: value string}]."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  points = [{} for _ in range(num)]
  for j, (key, (log, lo, hi)) in enumerate(sorted(random.items())):
    u = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.PRNGKey(seed), j), (num,)),
                   np.float64)
    vals = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))) if log else lo + u * (hi - lo)
    for p, v in zip(points, vals):
      p[key] = f"{v:.6g}"
  return points


def is_traceable(agent_name: str, config, env, field: str, value: float) -> bool:
  """Whether the agent initialises, updates and acts with `field` as a traced value."""
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp

  import envs
  from algorithms.common import divergence
  from experiments import runner
  if not isinstance(getattr(config, field), float):
    return False
  concrete = runner.AGENTS[agent_name][1](config, env)

  def probe(h, key):  # what the runner does with a member: init, updates, evaluation
    agent = runner.traced_agent(agent_name, config, env, {field: h})
    state = divergence.run_guarded_updates(agent, agent.init(key), 1, None, concrete.data)[0]
    policy = agent.make_policy(agent.policy_params(state), True)
    return envs.episode_returns(env, policy, key, 1, max_steps=2)

  try:
    jax.eval_shape(probe, jnp.float32(value), jax.random.PRNGKey(0))
    return True
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
          jax.errors.TracerIntegerConversionError, jax.errors.TracerArrayConversionError,
          TypeError):
    return False


def plan(agent_name: str, base: list[str], env_args: list[str], points: list[dict[str, str]],
         env_name: str):
  """Splits the fields into traced and static -> (traced names, static names, programs:
  [(static {key: value}, [point indices])]); ValueError for a bad field or value."""
  # pylint: disable=import-outside-toplevel
  import envs
  from experiments.agents import make_config, parse_overrides
  keys = sorted({k for p in points for k in p})
  for p in points:  # every point's config, with concrete values, before anything runs
    make_config(agent_name, base + [f"{k}={v}" for k, v in p.items()]).validate()
  config = make_config(agent_name, base + [f"{k}={v}" for k, v in points[0].items()])
  env = envs.make(env_name, **parse_overrides(env_args, {}, "--env_arg"))
  traced = [k for k in keys if is_traceable(agent_name, config, env, k, float(
      getattr(make_config(agent_name, base + [f"{k}={points[0][k]}"]), k)))]
  static = [k for k in keys if k not in traced]
  programs = {}
  for i, p in enumerate(points):
    programs.setdefault(tuple((k, p[k]) for k in static), []).append(i)
  return traced, static, [(dict(s), idx) for s, idx in programs.items()]


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not FLAGS.workdir:
    sys.exit("error: --workdir is required")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  try:
    grid = parse_grid(FLAGS.grid)
    rand = parse_random(FLAGS.random)
  except ValueError as e:
    sys.exit(f"error: {e}")
  both = set(grid) & set(rand)
  if both:
    sys.exit(f"error: {sorted(both)} in both --grid and --random")
  if not grid and not rand:
    sys.exit("error: nothing to sweep: give --grid and/or --random")
  if FLAGS.num_processes > 1 or FLAGS.coordinator:
    if not FLAGS.coordinator or not 0 <= FLAGS.process_id < FLAGS.num_processes:
      sys.exit("error: multi-host needs --coordinator=HOST:PORT, --num_processes=N and "
               "0 <= --process_id < N")
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np

  if FLAGS.coordinator:
    jax.distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    # each process computes its own programs: its arrays live on its own devices
    jax.config.update("jax_default_device", jax.local_devices()[0])
  from experiments import plots, runner
  from experiments.aggregate import iqm_ci

  grid_points = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]
  rand_points = random_points(rand, FLAGS.num_random, FLAGS.seed) if rand else [{}]
  points = [{**g, **r} for g in grid_points for r in rand_points]
  try:
    traced, static, programs = plan(FLAGS.agent, list(FLAGS.override), list(FLAGS.env_arg),
                                    points, FLAGS.env)
  except ValueError as e:
    sys.exit(f"error: {e}")
  if jax.process_index() == 0:
    print(f"{len(points)} points x {FLAGS.num_seeds} seeds in {len(programs)} program(s); "
          f"traced (vmapped with the seeds): {', '.join(traced) or 'none'}; "
          f"static (one program per value): {', '.join(static) or 'none'}", file=sys.stderr)

  results = {}
  for j, (fixed, idx) in enumerate(programs):
    name = "+".join(f"{k}={v}" for k, v in fixed.items()) or "all"
    workdir = os.path.join(FLAGS.workdir, "programs", name)
    spec = runner.RunSpec(
        agent=FLAGS.agent, env=FLAGS.env, num_seeds=FLAGS.num_seeds,
        total_steps=FLAGS.total_steps, seed=FLAGS.seed, num_evals=FLAGS.num_evals,
        eval_episodes=FLAGS.eval_episodes, env_args=tuple(FLAGS.env_arg),
        overrides=tuple(FLAGS.override) + tuple(f"{k}={v}" for k, v in fixed.items()),
        traced=tuple((k, tuple(float(points[i][k]) for i in idx)) for k in traced))
    if j % jax.process_count() != jax.process_index():
      results[name] = (idx, workdir)
      continue
    try:
      summary = runner.train(spec, workdir, progress=FLAGS.progress, local_devices=True)
    except (ValueError, runner.RunError) as e:
      sys.exit(f"error: {e}")
    runner.exit_unless_finished(summary, workdir, f"program {name}")
    results[name] = (idx, workdir)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("sweep: every program trained")
  if jax.process_index() != 0:
    return

  rows = []
  for name, (idx, workdir) in results.items():
    with open(os.path.join(workdir, "summary.json")) as f:
      final = np.asarray(json.load(f)["final_return"], np.float64).reshape(len(idx), FLAGS.num_seeds)
    for g, i in enumerate(idx):
      iqm, lo, hi = iqm_ci(final[g][:, None])
      rows.append({"point": i, **points[i], "program": name, "final_return": final[g].tolist(),
                   "mean": float(final[g].mean()), "iqm": float(iqm[0]), "ci": [float(lo[0]), float(hi[0])]})
  rows.sort(key=lambda r: r["point"])
  keys = list(grid) + sorted(rand)
  out = {"agent": FLAGS.agent, "env": FLAGS.env, "num_seeds": FLAGS.num_seeds,
         "total_steps": FLAGS.total_steps, "traced": traced, "static": static,
         "programs": len(programs), "processes": jax.process_count(), "points": rows}
  with open(os.path.join(FLAGS.workdir, "sweep.json"), "w") as f:
    json.dump(out, f, indent=1)
  with open(os.path.join(FLAGS.workdir, "sweep.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(keys + ["iqm", "ci_low", "ci_high", "mean"] + [f"seed_{s}" for s in range(FLAGS.num_seeds)])
    for r in rows:
      w.writerow([r[k] for k in keys] + [r["iqm"], *r["ci"], r["mean"]] + r["final_return"])
  for k in keys:
    values = sorted({r[k] for r in rows}, key=float)
    pooled = [np.concatenate([r["final_return"] for r in rows if r[k] == v]) for v in values]
    stats = [iqm_ci(np.asarray(p)[:, None]) for p in pooled]
    plots.sensitivity([float(v) for v in values], [s[0][0] for s in stats], [s[1][0] for s in stats],
                      [s[2][0] for s in stats], k, os.path.join(FLAGS.workdir, f"sensitivity_{k}.png"),
                      f"{FLAGS.agent} on {FLAGS.env}: final return vs {k} "
                      f"({FLAGS.num_seeds} seeds x {len(rows) // len(values)} points per value)")
  print(f"| {' | '.join(keys)} | final return IQM [95% CI] | mean |")
  print("|" + "---|" * (len(keys) + 2))
  for r in rows:
    print(f"| {' | '.join(str(r[k]) for k in keys)} | {r['iqm']:.1f} [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] "
          f"| {r['mean']:.1f} |")


if __name__ == "__main__":
  app.run(main)
