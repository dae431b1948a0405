"""Trains one agent over many seeds at once, with evaluation, checkpoints and resume.

The seeds are one `vmap` axis; with several devices the train state is sharded over a
1-D `seed` mesh (`jax.sharding`), so the same compiled program spreads the seeds.
The run is `num_evals` chunks of `lax.scan`ned updates; after each chunk every seed's
deterministic policy is evaluated, metrics are appended to `metrics.jsonl` and the
state is checkpointed. Re-running on the same workdir resumes after the last
checkpoint and ends in the same parameters as an uninterrupted run.

What clusters do to runs (issue 14):
- divergence: every update is checked inside the jitted chunk
  (`algorithms.common.divergence`); a seed that diverges is frozen at its state before
  that chunk (read back from its checkpoint) and reported (`diverged` in metrics rows and
  the summary); the other seeds go on; when every seed has diverged the run stops;
- damaged checkpoints: restore verifies the newest and falls back to older ones
  (`experiments.checkpoints`);
- preemption: SIGTERM finishes the chunk, checkpoints and stops (`experiments.preemption`);
- write failures (full disk, read-only workdir) stop the run with one clear `RunError`;
  earlier checkpoints and metrics stay intact;
- one process per workdir (`experiments.workdir_lock`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

import envs
from algorithms.common import divergence
from experiments import plots
from experiments.agents import AGENTS, make_config, parse_overrides
from experiments.checkpoints import CheckpointError, Checkpointer
from experiments.preemption import EXIT_PREEMPTED, Preemption
from experiments.workdir_lock import WorkdirLock, WorkdirLocked

DIVERGENCE_BOUND = 1e10


class RunError(RuntimeError):
  """The run cannot start or go on; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """Everything that defines a training run (written to config.json)."""

  agent: str
  env: str
  num_seeds: int
  total_steps: int
  seed: int = 0
  num_evals: int = 10
  eval_episodes: int = 8
  overrides: tuple[str, ...] = ()
  env_args: tuple[str, ...] = ()
  # |loss| (or |kl|) past this marks a seed diverged; inf: only non-finite parameters do.
  divergence_bound: float = DIVERGENCE_BOUND
  # Hyperparameter points trained in the same program as the seeds: ((field, (v_1, …, v_G)),
  # …) gives G points; the vmapped axis holds G × num_seeds members, point-major, with the
  # config fields as traced values (experiments.sweep). () is a plain run.
  traced: tuple[tuple[str, tuple[float, ...]], ...] = ()

  def __post_init__(self):
    # A dmc/ run records its env fidelity, so that a later default cannot change a resumed run.
    object.__setattr__(self, "env_args", with_fidelity(self.env, tuple(self.env_args),
                                                       "dm_control"))

  def validate(self) -> None:
    """Raises ValueError with one line on any bad setting."""
    if self.agent not in AGENTS:
      raise ValueError(f"unknown agent {self.agent!r}; known agents: {', '.join(sorted(AGENTS))}")
    for name in ("num_seeds", "total_steps", "num_evals", "eval_episodes"):
      if getattr(self, name) <= 0:
        raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
    if not self.divergence_bound > 0:
      raise ValueError(f"--divergence_bound must be positive (inf: no bound), "
                       f"got {self.divergence_bound}")
    if len({len(v) for _, v in self.traced}) > 1 or any(len(v) == 0 for _, v in self.traced):
      raise ValueError("traced fields need the same, non-zero number of values each")

  @property
  def num_points(self) -> int:
    """Hyperparameter points in this program (1 for a plain run)."""
    return len(self.traced[0][1]) if self.traced else 1

  @property
  def num_members(self) -> int:
    """Entries of the vmapped axis: points × seeds, point-major."""
    return self.num_points * self.num_seeds


def seed_sharding(num_seeds: int, local: bool = False) -> Optional[NamedSharding]:
  """Shards the leading seed axis over as many devices as divide `num_seeds` (None if 1):
  of every process (one multi-host program), or of this process only (`local`)."""
  devices = jax.local_devices() if local else jax.devices()
  n = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
  if n == 1:
    return None
  return NamedSharding(Mesh(np.array(devices[:n]), ("seed",)), PartitionSpec("seed"))


def _jsonable(x: Any) -> Any:
  x = float(x)
  return None if math.isnan(x) else x


def _read_metrics(path: str) -> list[dict]:
  """The rows of metrics.jsonl; a line cut short by a failed write is skipped."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except ValueError:
        continue
  return rows


def _write_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` atomically: a reader sees the old file or the whole new one."""
  tmp = path + ".tmp"
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _write_lines(path: str, rows: list[dict]) -> None:
  """Replaces `path` by `rows` as JSON lines, atomically."""
  _write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def _write_json(path: str, obj: Any) -> None:
  """Writes `obj` to `path` as JSON, atomically."""
  _write_atomic(path, json.dumps(obj, indent=2))


def _append(path: str, rows: list[dict]) -> None:
  with open(path, "a") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")
    f.flush()
    os.fsync(f.fileno())


def with_fidelity(env: str, env_args: tuple[str, ...], default: str) -> tuple[str, ...]:
  """`env_args` with `fidelity=default` added for a dmc/ env that names none."""
  if env.startswith("dmc/") and not any(a.startswith("fidelity=") for a in env_args):
    return (*env_args, f"fidelity={default}")
  return env_args


def _stored_config(path: str) -> dict:
  """config.json; a dmc/ run written before issue 13 (no fidelity) ran the port as shipped.
  Agent-config fields added to the agent since the run was written read as their
  defaults: a new field's default keeps the earlier behaviour (the rule for adding one),
  so such a run resumes unless the field is overridden."""
  with open(path) as f:
    cfg = json.load(f)
  if "env" in cfg:
    cfg["env_args"] = list(with_fidelity(cfg["env"], tuple(cfg.get("env_args", ())), "playground"))
    cfg.setdefault("divergence_bound", DIVERGENCE_BOUND)  # written before issue 14
    cfg.setdefault("traced", [])                           # written before issue 17
  if cfg.get("agent") in AGENTS and "agent_config" in cfg:
    defaults = json.loads(json.dumps(dataclasses.asdict(AGENTS[cfg["agent"]][0]())))
    cfg["agent_config"] = {**defaults, **cfg["agent_config"]}
  return cfg


def _check_workdir(workdir: str, config: dict) -> None:
  config = json.loads(json.dumps(config))  # tuples -> lists, as config.json holds them
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    old = _stored_config(path)
    flat = lambda c: {**{k: v for k, v in c.items() if k != "agent_config"},
                      **{f"agent_config.{k}": v for k, v in c.get("agent_config", {}).items()}}
    old, new = flat(old), flat(config)
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
      k = diff[0]
      raise ValueError(f"{workdir} holds a different run ({k}: {old.get(k)!r} there, "
                       f"{new.get(k)!r} now); use a new --workdir")
  else:
    _write_json(path, config)


def build(spec: RunSpec):
  """(agent config, env, Agent) for a validated `spec` (with traced fields: the first
  point's config and agent, each point's config validated with its concrete values)."""
  spec.validate()
  config = run_config(spec)
  for g in range(spec.num_points):
    point = dataclasses.replace(config, **{f: v[g] for f, v in spec.traced})
    point.validate()
  config = dataclasses.replace(config, **{f: v[0] for f, v in spec.traced})
  env = envs.make(spec.env, **parse_overrides(list(spec.env_args), {}, "--env_arg"))
  return config, env, AGENTS[spec.agent][1](config, env)


def run_config(spec: RunSpec):
  """The agent config of `spec`'s overrides, its run length filled in where the agent's
  schedules span the run (total_steps = 0)."""
  config = make_config(spec.agent, list(spec.overrides))
  if getattr(config, "total_steps", None) == 0:
    config = dataclasses.replace(config, total_steps=spec.total_steps)
  return config


def traced_agent(agent_name: str, config, env, values: dict):
  """The agent with config fields set to traced `values` {field: scalar tracer}, built
  inside a traced function (its config is validated per point by `build`; here
  validation, which would branch on the tracers, is skipped)."""
  cls = type(config)
  unchecked = type(cls.__name__, (cls,), {"validate": lambda self: None})
  fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
  # What the factory computes from concrete values (a dataset or demos read from disk and
  # made arrays) is computed now, not traced; only what depends on `values` is traced.
  with jax.ensure_compile_time_eval():
    return AGENTS[agent_name][1](unchecked(**{**fields, **values}), env)


def member_values(spec: RunSpec) -> dict:
  """{field: [members] float32}: each member's traced values (point-major)."""
  return {f: jnp.repeat(jnp.asarray(v, jnp.float32), spec.num_seeds) for f, v in spec.traced}


def member_keys(spec: RunSpec) -> jax.Array:
  """[members] training keys: seed s of every point gets the key of seed s of a plain run."""
  return jnp.tile(jax.random.split(jax.random.PRNGKey(spec.seed), spec.num_seeds), (spec.num_points, 1))


def train(spec: RunSpec, workdir: str, progress: bool = True,
          max_chunks: Optional[int] = None, keep_checkpoints: bool = False,
          local_devices: bool = False) -> dict:
  """Runs (or resumes) `spec` in `workdir`; returns the summary written to summary.json.

  `max_chunks` stops after that many chunks in this call (for time-limited jobs; a
  later call resumes). The summary's `finished` says whether the run is complete;
  `preempted` that a SIGTERM stopped it at a checkpoint; `diverged` lists the frozen
  seeds (`all_diverged`: the run stopped because no seed was left).
  `keep_checkpoints` keeps every chunk's checkpoint (e.g. as OPE candidates), not the last 2.
  `local_devices` runs on this process's devices only (a multi-host sweep's own program).
  Raises ValueError / EnvError for a bad spec, RunError when the workdir is in use, cannot
  be written, or holds no readable checkpoint.
  """
  t_start = time.time()
  config, env, agent = build(spec)
  try:
    os.makedirs(workdir, exist_ok=True)
    lock = WorkdirLock(workdir)
    if local_devices or jax.process_index() == 0:  # one multi-host run shares its workdir
      lock.acquire()
  except WorkdirLocked as e:
    raise RunError(str(e)) from None
  except OSError as e:
    raise RunError(f"cannot write to {workdir}: {e.strerror or e}") from None
  try:
    with Preemption() as preemption:
      return _train(spec, workdir, config, agent, env, t_start, progress, max_chunks,
                    keep_checkpoints, preemption, local_devices)
  finally:
    lock.release()


def _reference_returns(config) -> Optional[dict]:
  """The random and expert reference returns of an offline agent's dataset, if it has them."""
  path = getattr(config, "dataset", "")
  if not path or not os.path.exists(path + ".json"):
    return None
  with open(path + ".json") as f:
    ref = json.load(f).get("reference_returns")
  return ref if ref and ref.get("expert", 0) != ref.get("random", 0) else None


def _warn(message: str) -> None:
  tqdm.write(message, file=sys.stderr)


def _train(spec, workdir, config, agent, env, t_start, progress, max_chunks, keep_checkpoints,
           preemption, local_devices=False) -> dict:
  num_updates = -(-spec.total_steps // agent.steps_per_update)
  updates_per_chunk = -(-num_updates // spec.num_evals)
  num_chunks = -(-num_updates // updates_per_chunk)
  steps_per_chunk = updates_per_chunk * agent.steps_per_update

  def unwritable(what, e, saved):
    reason = (e.strerror if isinstance(e, OSError) and e.strerror else
              e.reason if isinstance(e, CheckpointError) else str(e))
    kept = (f"checkpoint {saved} and the metrics up to it are intact" if saved is not None
            else "nothing was checkpointed yet")
    return RunError(f"cannot write {what} in {workdir} ({reason}); {kept}: free space or "
                    "make the workdir writable, then re-run the same command to resume")

  try:
    _check_workdir(workdir, {**dataclasses.asdict(spec), "agent_config": dataclasses.asdict(config)})
  except OSError as e:
    raise unwritable("config.json", e, None) from None

  members = spec.num_members
  sharding = seed_sharding(members, local_devices)
  keys = member_keys(spec)
  hyper = member_values(spec)          # {} for a plain run
  if sharding is not None:
    hyper = jax.device_put(hyper, sharding)
  # With traced fields each member's agent is built inside the vmapped function, from its
  # own values; a plain run uses the one agent.
  agent_of = (lambda h: traced_agent(spec.agent, config, env, h)) if spec.traced else (lambda h: agent)
  init = jax.jit(jax.vmap(lambda h, k: agent_of(h).init(k)), out_shardings=sharding)
  bound = None if math.isinf(spec.divergence_bound) else spec.divergence_bound
  # Outputs pinned to the seed sharding: XLA would otherwise replicate the zero-size
  # arrays of MJX states, and the next call would reject them.
  # An offline agent's dataset is an argument, shared by every seed (not a constant).
  chunk = jax.jit(jax.vmap(lambda h, s, d: divergence.run_guarded_updates(
      agent_of(h), s, updates_per_chunk, bound, d), in_axes=(0, 0, None)),
                  donate_argnums=1, out_shardings=sharding)
  # Writes frozen seeds' states back into the batch: state [S, ...], seeds [F], values [F, ...].
  put_seeds = jax.jit(lambda state, seeds, values: jax.tree.map(
      lambda x, v: x.at[seeds].set(v), state, values), donate_argnums=0, out_shardings=sharding)

  def _eval(h, state, key):
    a = agent_of(h)
    policy = a.make_policy(a.policy_params(state), True)
    return envs.episode_returns(env, policy, key, spec.eval_episodes)

  evaluate_seeds = jax.jit(jax.vmap(_eval))

  def eval_keys(index):  # independent of the training keys: evaluation never changes training
    return jnp.tile(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(spec.seed),
                                                        1_000_003 + index), spec.num_seeds),
                    (spec.num_points, 1))

  metrics_path = os.path.join(workdir, "metrics.jsonl")
  summary_path = os.path.join(workdir, "summary.json")
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                      max_to_keep=None if keep_checkpoints else 2, local=local_devices)
  template = jax.eval_shape(init, hyper, keys)
  diverged: dict[int, dict] = {}     # seed -> report
  frozen: dict[int, Any] = {}        # seed -> its state (host arrays) while frozen
  try:
    if ckpt.latest_step() == num_chunks and os.path.exists(summary_path):
      with open(summary_path) as f:  # nothing left to train: keep the run's own timings
        done_summary = json.load(f)
      # ... if it is the summary of the finished run (one written when a stop at an earlier
      # chunk was followed by a run that died before its summary is rebuilt below).
      if done_summary.get("chunks_done") == num_chunks:
        return {"diverged": [], "all_diverged": False, "preempted": False,  # pre-issue-14 runs
                **done_summary}
    t0 = time.time()
    try:
      start, state = ckpt.restore_latest(template, warn=_warn)
    except CheckpointError as e:
      raise RunError(str(e)) from None
    fresh = start is None
    if fresh:
      state = init(hyper, keys)
      start = 0
      if os.path.exists(metrics_path):
        os.remove(metrics_path)
    else:
      if sharding is not None:
        state = jax.device_put(state, sharding)  # empty leaves come back unsharded
      rows = [r for r in _read_metrics(metrics_path) if r["chunk"] <= start]
      for r in rows:
        if r["chunk"] == start and r.get("diverged"):
          diverged[r["seed"]] = r["diverged"]
      if diverged:
        host = jax.device_get(state)
        frozen = {s: jax.tree.map(lambda x, s=s: x[s], host) for s in diverged}
      try:
        _write_lines(metrics_path, rows)
      except OSError as e:
        raise unwritable("metrics.jsonl", e, start) from None
    saved = start if start > 0 else None

    def record(index, state, train_metrics):
      returns = np.asarray(evaluate_seeds(hyper, state, eval_keys(index)))
      rows = []
      for s in range(members):
        row = {"chunk": index, "env_steps": agent.init_steps + index * steps_per_chunk, "seed": s,
               "eval_return": float(returns[s].mean()),
               "eval_return_std": float(returns[s].std())}
        if spec.traced:  # "seed" is the member; its point and the point's seed index
          row.update(point=s // spec.num_seeds, point_seed=s % spec.num_seeds)
        for k, v in (train_metrics or {}).items():
          vals = np.asarray(v[s], np.float64)
          row[f"train/{k}"] = (None if s in diverged else  # a frozen seed's updates are not kept
                               _jsonable(np.nanmean(vals) if np.isfinite(vals).any() else np.nan))
        if s in diverged:
          row["diverged"] = diverged[s]
        rows.append(row)
      try:
        _append(metrics_path, rows)
      except OSError as e:
        raise unwritable("metrics.jsonl", e, saved) from None
      return returns.mean(axis=1)

    def save(index, state):
      try:
        ckpt.save(index, state)
      except CheckpointError as e:
        raise unwritable(f"checkpoint {index}", e, saved) from None
      return index

    if fresh:  # (a run resumed from checkpoint 0 has its chunk-0 rows and checkpoint)
      record(0, state, None)
      saved = save(0, state)
    stop = num_chunks if max_chunks is None else min(num_chunks, start + max_chunks)
    compile_seconds, train_seconds = 0.0, 0.0
    if start < stop:
      t = time.time()
      compiled = chunk.lower(hyper, state, agent.data).compile()
      compile_seconds = time.time() - t
    bar = tqdm(total=num_chunks, initial=start, disable=not progress, unit="chunk",
               desc=f"{spec.agent} on {spec.env} x{spec.num_seeds} seeds"
                    + (f" x{spec.num_points} points" if spec.traced else ""), file=sys.stderr)
    names = None
    done, preempted_at = start, None
    for c in range(start, stop):
      if len(diverged) == members:
        break
      if preemption.requested is not None:  # during restore or compile: chunk c is saved
        preempted_at = c
        break
      t = time.time()
      state, train_metrics, first_bad, code = compiled(hyper, state, agent.data)
      jax.block_until_ready(state)
      train_seconds += time.time() - t
      first_bad, code = np.asarray(first_bad), np.asarray(code)
      new = [s for s in range(members) if first_bad[s] != divergence.HEALTHY
             and s not in diverged]
      if new:
        names = names or divergence.watched_metrics(train_metrics)
        try:  # the state before this chunk: its checkpoint, read to host memory
          before = ckpt.restore(c, template, to_host=True)
        except CheckpointError as e:
          _warn(f"warning: {e}; the diverged seeds stay frozen in their diverged state")
          before = jax.device_get(state)
        for s in new:
          u = int(first_bad[s])
          diverged[s] = {
              "seed": s, "chunk": c + 1, "update": c * updates_per_chunk + u,
              "env_step": agent.init_steps + c * steps_per_chunk + (u + 1) * agent.steps_per_update,
              "reason": divergence.describe(int(code[s]), names, bound), "frozen_at_chunk": c}
          frozen[s] = jax.tree.map(lambda x, s=s: x[s], before)
          d = diverged[s]
          _warn(f"seed {s} diverged at env step {d['env_step']} (chunk {c + 1}): {d['reason']}; "
                f"frozen at its chunk-{c} state, the other seeds go on")
      if frozen:
        seeds = sorted(frozen)
        values = jax.tree.map(lambda *xs: np.stack(xs), *[frozen[s] for s in seeds])
        state = put_seeds(state, np.asarray(seeds), values)
      returns = record(c + 1, state, jax.device_get(train_metrics))
      saved = save(c + 1, state)
      done = c + 1
      bar.update(1)
      bar.set_postfix(eval_return=f"{returns.mean():.1f}", steps=f"{(c + 1) * steps_per_chunk:.3g}",
                      **({"diverged": len(diverged)} if diverged else {}))
      if preemption.requested is not None or ckpt.reached_preemption(c + 1):
        preempted_at = c + 1
        if done < stop:
          break
    bar.close()
  finally:
    ckpt.close()

  records = _read_metrics(metrics_path)
  final = [r["eval_return"] for r in records if r["chunk"] == done]
  trained_chunks = done - start
  reference = _reference_returns(config)
  summary = {
      "agent": spec.agent, "env": spec.env, "num_seeds": spec.num_seeds,
      **({"num_points": spec.num_points, "members": members} if spec.traced else {}),
      "total_steps": agent.init_steps + done * steps_per_chunk,
      "requested_steps": spec.total_steps,
      "final_return": final,
      "final_return_mean": float(np.mean(final)),
      "steps_per_second": (trained_chunks * steps_per_chunk * members / train_seconds
                           if train_seconds > 0 else None),
      "compile_seconds": compile_seconds,
      "wall_seconds": time.time() - t_start,
      "resumed_from_chunk": start,
      "chunks_done": done,
      "finished": done == num_chunks,
      "devices": len(sharding.mesh.devices.ravel()) if sharding is not None else 1,
      "setup_seconds": t0 - t_start,
      "diverged": [diverged[s] for s in sorted(diverged)],
      "all_diverged": len(diverged) == members,
      "preempted": preempted_at is not None and done < stop,
  }
  if reference:  # an offline run: D4RL's normalised score from its dataset's references
    lo, hi = reference["random"], reference["expert"]
    summary["final_normalized_score"] = [100.0 * (r - lo) / (hi - lo) for r in final]
    summary["final_normalized_score_mean"] = float(np.mean(summary["final_normalized_score"]))
  try:
    plots.learning_curve(records, os.path.join(workdir, "learning_curve.png"),
                         f"{spec.agent} on {spec.env}")
    if preemption.requested is not None:
      summary["seconds_from_sigterm"] = time.time() - preemption.requested
    _write_json(summary_path, summary)
  except OSError as e:
    raise unwritable("summary.json", e, saved) from None
  return summary


def exit_unless_finished(summary: dict, workdir: str, what: str) -> None:
  """For binaries that train a run before using it: exits with EXIT_PREEMPTED (and a line
  saying so) if a SIGTERM stopped `what`, with one error line if it stopped early."""
  if summary["preempted"]:
    print(f"preempted: {what} stopped at a checkpoint after SIGTERM; re-run the same command "
          "to resume", file=sys.stderr)
    sys.exit(EXIT_PREEMPTED)
  if not summary["finished"]:
    sys.exit(f"error: {what} in {workdir} stopped early "
             f"({'every seed diverged' if summary['all_diverged'] else 'unfinished'})")


def read_spec(workdir: str) -> dict:
  """The RunSpec fields stored in `workdir`/config.json."""
  cfg = _stored_config(os.path.join(workdir, "config.json"))
  out = {k: tuple(v) if isinstance(v, list) else v
         for k, v in cfg.items() if k != "agent_config"}
  out["traced"] = tuple((f, tuple(v)) for f, v in cfg.get("traced", ()))
  return out


def checkpoint_steps(workdir: str) -> list[int]:
  """The chunk indices with a checkpoint in `workdir` (0 is the initial state)."""
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=None)
  steps = ckpt.all_steps()
  ckpt.close()
  return steps


def load_state(workdir: str, step: Optional[int] = None) -> Any:
  """The train state [members, ...] of checkpoint `step` (default: the last), as numpy
  (members = seeds for a plain run; points × seeds, point-major, with traced fields)."""
  spec = RunSpec(**read_spec(workdir))
  _, _, agent = build(spec)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=None)
  step = ckpt.latest_step() if step is None else step
  # the state's shapes do not depend on traced values: the first point's agent gives them
  state = ckpt.restore(step, jax.eval_shape(jax.vmap(agent.init), member_keys(spec)))
  ckpt.close()
  return jax.tree.map(np.asarray, state)
