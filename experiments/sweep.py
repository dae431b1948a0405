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
Each program (the traced points of one static combination, or chunks of
`--points_per_program` of them) is an `experiments.runner` run in
<workdir>/programs/<static values or "all">/<hash of its traced points>: checkpointed,
resumable (a finished program is reused; with --points_per_program, also by a grid that
keeps its chunk of points), its members sharded over a `jax.sharding` mesh of the devices. A diverged seed
is frozen and counted in the table; a point whose seeds all diverge is a result, not an
error.

Multi-host (`--coordinator=HOST:PORT --num_processes=N --process_id=I`):
`jax.distributed.initialize`, then process I trains the programs I, I + N, ... on its own
devices, all into the one shared workdir; process 0 waits for every program's summary
there and writes the table. The programs do not depend on N, so N processes give the
1-process table.

Outputs: <workdir>/sweep.json (per point: its values, the final return of each seed, IQM
and 95% bootstrap CI over seeds, rliable) and sweep.csv; a sensitivity plot per swept
field (sensitivity_<field>.png: final return against the field's value, the IQM over the
seeds of every point with that value, 95% CI).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import sys
import time

from absl import app, flags, logging

from experiments.grid import canonical_value, grid_values

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
flags.DEFINE_integer("points_per_program", 0, "Traced points per program (0: all of a static "
                     "combination): smaller programs spread over hosts and resume separately.")
flags.DEFINE_string("coordinator", None, "Multi-host: the coordinator's HOST:PORT.")
flags.DEFINE_integer("num_processes", 1, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", 0, "Multi-host: this process's index.")


def parse_grid(grid: list[str]) -> dict[str, list[str]]:
  """{key: [value strings]} from 'key=v1|v2|...' entries; ValueError on a bad one."""
  out = {}
  for g in grid:
    key, vals = grid_values(g, g, "key=v1|v2|...")
    if key in out:
      raise ValueError(f"--grid names {key} twice")
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


def why_static(agent_name: str, config, env, field: str, value: float, data=None):
  """None if the agent initialises, updates and acts with `field` as a traced value, else
  the reason it cannot (one line). `data`: the agent's `Agent.data` for `config` (built
  here when None; pass it to probe several fields without reading a dataset each time)."""
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp

  import envs
  from algorithms.common import divergence
  from experiments import runner
  if not isinstance(getattr(config, field), float):
    return f"{type(getattr(config, field)).__name__} field"
  if data is None:
    data = runner.AGENTS[agent_name][1](config, env).data

  def probe(h, key):  # what the runner does with a member: init, updates, evaluation
    agent = runner.traced_agent(agent_name, config, env, {field: h})
    state = divergence.run_guarded_updates(agent, agent.init(key), 1, None, data)[0]
    policy = agent.make_policy(agent.policy_params(state), True)
    return envs.episode_returns(env, policy, key, 1, max_steps=2)

  try:
    jax.eval_shape(probe, jnp.float32(value), jax.random.PRNGKey(0))
    return None
  except TypeError as e:  # jax's tracer errors are TypeErrors, as are traced shapes
    return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"


def plan(agent_name: str, base: list[str], env_args: list[str], points: list[dict[str, str]],
         env_name: str, total_steps: int, points_per_program: int):
  """Splits the fields into traced and static, the points into programs -> (traced names,
  {static name: reason}, programs: [(static {key: value}, [point indices])]).

  A field is traced when it is a float field and every static combination's agent takes
  it as a traced value; the traced points of one static combination are one program, or
  chunks of `points_per_program` (> 0) of them. ValueError for a bad field or value.
  """
  # pylint: disable=import-outside-toplevel
  import envs
  from experiments import runner
  from experiments.agents import parse_overrides

  def config_of(p):
    spec = runner.RunSpec(agent=agent_name, env=env_name, num_seeds=1, total_steps=total_steps,
                          overrides=tuple(base) + tuple(f"{k}={v}" for k, v in p.items()))
    return runner.run_config(spec)

  keys = sorted({k for p in points for k in p})
  for p in points:  # every point's config, with concrete values, before anything runs
    config_of(p).validate()
  env = envs.make(env_name, **parse_overrides(env_args, {}, "--env_arg"))
  first = config_of(points[0])
  candidates = [k for k in keys if isinstance(getattr(first, k), float)]
  static = {k: f"{type(getattr(first, k)).__name__} field" for k in keys if k not in candidates}
  # one probe per combination of the non-float fields (a float field may be traceable
  # for one value of a switch and not for another)
  combos = {tuple((k, p[k]) for k in static): p for p in points}
  configs = [config_of(p) for p in combos.values()] if candidates else []
  # each combination's agent data (a dataset, demos) read once for all its probes
  probes = [(c, runner.AGENTS[agent_name][1](c, env).data) for c in configs]
  for k in candidates:
    for config, data in probes:
      reason = why_static(agent_name, config, env, k, float(getattr(config, k)), data)
      if reason:
        static[k] = reason
        break
  traced = [k for k in candidates if k not in static]
  groups = {}
  for i, p in enumerate(points):
    groups.setdefault(tuple((k, p[k]) for k in sorted(static)), []).append(i)
  size = points_per_program if points_per_program > 0 else len(points)
  programs = [(dict(s), idx[j:j + size]) for s, idx in groups.items() for j in range(0, len(idx), size)]
  return traced, static, programs


def program_name(fixed: dict, traced: list[str], points: list[dict], idx: list[int]) -> str:
  """<static values>[/<hash of the traced values>]: the same static values and traced
  points give the same program (and workdir), whatever else the grid holds."""
  name = "+".join(f"{k}={v}" for k, v in sorted(fixed.items())) or "all"
  if traced:
    values = [[points[i][k] for k in traced] for i in idx]
    name += "/" + hashlib.sha1(json.dumps([traced, values]).encode()).hexdigest()[:10]
  return name


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
    # Processes finish their programs at different times and then wait for one another
    # (below), so the shutdown barrier gets as long as a sweep may take.
    jax.distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id,
                               shutdown_timeout_seconds=7 * 24 * 3600)
    # each process computes its own programs: its arrays live on its own devices
    jax.config.update("jax_default_device", jax.local_devices()[0])
  from experiments import plots, runner
  from experiments.aggregate import iqm_ci
  from experiments.agents import make_config

  if rand and FLAGS.num_random < 1:
    sys.exit(f"error: --num_random must be >= 1, got {FLAGS.num_random}")
  try:
    base = make_config(FLAGS.agent, list(FLAGS.override))
    for k, (_, lo, _) in rand.items():
      make_config(FLAGS.agent, list(FLAGS.override) + [f"{k}={lo}"])   # a known key
      if not isinstance(getattr(base, k), float):
        sys.exit(f"error: --random draws real numbers; {k} is not a float field of {FLAGS.agent}")
  except ValueError as e:
    sys.exit(f"error: {e}")
  grid_points = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]
  rand_points = random_points(rand, FLAGS.num_random, FLAGS.seed) if rand else [{}]
  points = [{**g, **r} for g in grid_points for r in rand_points]
  try:
    traced, static, programs = plan(FLAGS.agent, list(FLAGS.override), list(FLAGS.env_arg),
                                    points, FLAGS.env, FLAGS.total_steps, FLAGS.points_per_program)
  except ValueError as e:
    sys.exit(f"error: {e}")
  if jax.process_index() == 0:
    print(f"{len(points)} points x {FLAGS.num_seeds} seeds in {len(programs)} program(s); "
          f"traced (vmapped with the seeds): {', '.join(traced) or 'none'}; "
          f"static (one program per value): {', '.join(static) or 'none'}", file=sys.stderr)
    for k, reason in static.items():
      print(f"  {k} is static: {reason}", file=sys.stderr)

  results = []
  for j, (fixed, idx) in enumerate(programs):
    name = program_name(fixed, traced, points, idx)
    workdir = os.path.join(FLAGS.workdir, "programs", name)
    results.append((name, idx, workdir))
    if j % jax.process_count() != jax.process_index():
      continue
    spec = runner.RunSpec(
        agent=FLAGS.agent, env=FLAGS.env, num_seeds=FLAGS.num_seeds,
        total_steps=FLAGS.total_steps, seed=FLAGS.seed, num_evals=FLAGS.num_evals,
        eval_episodes=FLAGS.eval_episodes, env_args=tuple(FLAGS.env_arg),
        overrides=tuple(FLAGS.override) + tuple(f"{k}={v}" for k, v in sorted(fixed.items())),
        traced=tuple((k, tuple(float(points[i][k]) for i in idx)) for k in traced))
    try:
      summary = runner.train(spec, workdir, progress=FLAGS.progress, local_devices=True)
    except (ValueError, runner.RunError) as e:
      sys.exit(f"error: {e}")
    if summary["preempted"] or not summary["all_diverged"]:  # all diverged: a result
      runner.exit_unless_finished(summary, workdir, f"program {name}")
  # Every process waits for every program on the shared workdir (a process that dies ends
  # the job through jax.distributed's heartbeat); process 0 then writes the table.
  for name, idx, workdir in results:
    waited = 0
    while not _done(workdir):
      if waited % 60 == 0:
        print(f"waiting for program {name} (another process)", file=sys.stderr, flush=True)
      time.sleep(5)
      waited += 5
  if jax.process_index() != 0:
    return

  rows = []
  for name, idx, workdir in results:
    with open(os.path.join(workdir, "summary.json")) as f:
      summary = json.load(f)
    final = np.asarray(summary["final_return"], np.float64).reshape(len(idx), FLAGS.num_seeds)
    diverged = [d["seed"] for d in summary["diverged"]]
    for g, i in enumerate(idx):
      iqm, lo, hi = iqm_ci(final[g][:, None])
      rows.append({"point": i, **points[i], "program": name, "final_return": final[g].tolist(),
                   "mean": float(final[g].mean()), "iqm": float(iqm[0]),
                   "ci": [float(lo[0]), float(hi[0])],
                   "diverged_seeds": [m % FLAGS.num_seeds for m in diverged
                                      if m // FLAGS.num_seeds == g]})
  rows.sort(key=lambda r: r["point"])
  keys = list(grid) + sorted(rand)
  out = {"agent": FLAGS.agent, "env": FLAGS.env, "num_seeds": FLAGS.num_seeds,
         "total_steps": FLAGS.total_steps, "traced": traced, "static": static,
         "programs": len(programs), "processes": jax.process_count(), "points": rows}
  with open(os.path.join(FLAGS.workdir, "sweep.json"), "w") as f:
    json.dump(out, f, indent=1)
  with open(os.path.join(FLAGS.workdir, "sweep.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(keys + ["iqm", "ci_low", "ci_high", "mean", "diverged_seeds"]
               + [f"seed_{s}" for s in range(FLAGS.num_seeds)])
    for r in rows:
      w.writerow([r[k] for k in keys] + [r["iqm"], *r["ci"], r["mean"], len(r["diverged_seeds"])]
                 + r["final_return"])
  for k in keys:
    values = sorted({r[k] for r in rows}, key=canonical_value if all(
        isinstance(canonical_value(r[k]), float) for r in rows) else str)
    pooled = [np.concatenate([r["final_return"] for r in rows if r[k] == v]) for v in values]
    stats = [iqm_ci(np.asarray(p)[:, None]) for p in pooled]
    plots.sensitivity(values, [s[0][0] for s in stats], [s[1][0] for s in stats],
                      [s[2][0] for s in stats], k, os.path.join(FLAGS.workdir, f"sensitivity_{k}.png"),
                      f"{FLAGS.agent} on {FLAGS.env}: final return vs {k} "
                      f"({FLAGS.num_seeds} seeds x {len(rows) // len(values)} points per value)")
  print(f"| {' | '.join(keys)} | final return IQM [95% CI] | mean | diverged seeds |")
  print("|" + "---|" * (len(keys) + 3))
  for r in rows:
    print(f"| {' | '.join(str(r[k]) for k in keys)} | {r['iqm']:.1f} [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] "
          f"| {r['mean']:.1f} | {len(r['diverged_seeds'])} |")


def _done(workdir: str) -> bool:
  """Whether the program in `workdir` has its final summary (finished, or every seed
  diverged)."""
  try:
    with open(os.path.join(workdir, "summary.json")) as f:
      s = json.load(f)
  except (OSError, ValueError):
    return False
  return bool(s.get("finished") or s.get("all_diverged"))


if __name__ == "__main__":
  app.run(main)
