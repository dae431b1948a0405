r"""What run robustness costs (issue 14): divergence detection and SIGTERM-to-exit.

    python -m benchmarks.fault_tolerance

1. Divergence detection: for each `--agents` on `--env`, the same vmapped chunk of
   `--updates` updates over `--num_seeds` seeds, compiled twice: with
   `divergence.run_guarded_updates` (the training binary's) and with the unchecked
   `run_updates`. The two are timed in alternation (`--repeats` each, after a warm-up)
   on one machine; prints env steps/s of each and the ratio.
2. SIGTERM to exit: the train binary on `--sigterm_agent`, signalled while its second
   chunk runs (`--sigterm_trials` times, spread over the chunk); prints the time from
   the signal to the process's exit, next to the period of one chunk (train, evaluate,
   checkpoint) in an uninterrupted run: the exit waits for the rest of the chunk, then
   writes its checkpoint, the plot and the summary.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
from absl import app, flags

from algorithms.common import divergence
from algorithms.common.agent import run_updates
from experiments import runner

FLAGS = flags.FLAGS
flags.DEFINE_list("agents", ["ppo", "sac"], "Agents to time divergence detection on.")
flags.DEFINE_string("env", "brax/hopper", "Env.")
flags.DEFINE_integer("num_seeds", 4, "Seeds per vmapped chunk.")
flags.DEFINE_integer("updates", 20, "Updates per timed chunk.")
flags.DEFINE_integer("repeats", 5, "Timed calls of each variant (alternating).")
flags.DEFINE_string("sigterm_agent", "ppo", "Agent of the SIGTERM trials ('' to skip them).")
flags.DEFINE_integer("sigterm_trials", 3, "SIGTERM trials.")


def divergence_cost(agent_name: str) -> dict:
  spec = runner.RunSpec(agent=agent_name, env=FLAGS.env, num_seeds=FLAGS.num_seeds,
                        total_steps=10**6)
  _, _, agent = runner.build(spec)
  keys = jax.random.split(jax.random.PRNGKey(0), FLAGS.num_seeds)
  state = jax.jit(jax.vmap(agent.init))(keys)
  plain = jax.jit(jax.vmap(lambda s: run_updates(agent, s, FLAGS.updates)))
  guarded = jax.jit(jax.vmap(lambda s: divergence.run_guarded_updates(
      agent, s, FLAGS.updates, runner.DIVERGENCE_BOUND)))
  fns = {"unchecked": plain, "checked": guarded}
  compiled = {k: f.lower(state).compile() for k, f in fns.items()}
  for f in compiled.values():
    jax.block_until_ready(f(state))
  times = {k: [] for k in fns}
  for _ in range(FLAGS.repeats):
    for k, f in compiled.items():
      t = time.perf_counter()
      jax.block_until_ready(f(state))
      times[k].append(time.perf_counter() - t)
  steps = FLAGS.updates * agent.steps_per_update * FLAGS.num_seeds
  sps = {k: steps / float(np.median(v)) for k, v in times.items()}
  return {"agent": agent_name, "steps_per_second": sps,
          "checked_over_unchecked": sps["checked"] / sps["unchecked"]}


def _start(workdir: str):
  cmd = [sys.executable, "-m", "experiments.train", f"--agent={FLAGS.sigterm_agent}",
         f"--env={FLAGS.env}", "--num_seeds=2", "--total_steps=200000", "--num_evals=10",
         "--eval_episodes=1", "--noprogress", f"--workdir={workdir}"]
  return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_chunk(proc, workdir: str, chunk: int) -> float:
  """Waits until `chunk`'s metrics rows are written; -> the time they were seen."""
  metrics = os.path.join(workdir, "metrics.jsonl")
  while True:
    if os.path.exists(metrics):
      with open(metrics) as f:
        if any(json.loads(l)["chunk"] >= chunk for l in f if l.endswith("\n")):
          return time.time()
    if proc.poll() is not None:
      raise RuntimeError(proc.communicate()[1][-2000:])
    time.sleep(0.01)


def chunk_period() -> float:
  """Seconds from one chunk's metrics to the next's in an uninterrupted run (train,
  evaluate, checkpoint): what a SIGTERM may have to wait for."""
  with tempfile.TemporaryDirectory() as d:
    proc = _start(d)
    t1 = _wait_for_chunk(proc, d, 1)
    t2 = _wait_for_chunk(proc, d, 2)
    proc.kill()
    proc.wait()
  return t2 - t1


def sigterm_trial(delay: float) -> dict:
  """Starts a run, waits until chunk 1 is recorded (chunk 2 under way) plus `delay` s,
  sends SIGTERM, and times the exit."""
  with tempfile.TemporaryDirectory() as d:
    proc = _start(d)
    t1 = _wait_for_chunk(proc, d, 1)
    time.sleep(delay)
    t = time.time()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate()
    exit_seconds = time.time() - t
  summary = json.loads(out[out.index("{"):])
  return {"returncode": proc.returncode, "delay": t - t1, "sigterm_to_exit_seconds": exit_seconds,
          "chunks_done": summary["chunks_done"]}


def main(argv):
  del argv
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind} x{len(jax.devices())}")
  print("\n| agent | env | seeds x updates | unchecked steps/s | checked steps/s | checked / unchecked |")
  print("|---|---|---|---|---|---|")
  for name in FLAGS.agents:
    r = divergence_cost(name)
    s = r["steps_per_second"]
    print(f"| {name} | {FLAGS.env} | {FLAGS.num_seeds} x {FLAGS.updates} | {s['unchecked']:,.0f} | "
          f"{s['checked']:,.0f} | {r['checked_over_unchecked']:.3f} |", flush=True)
  if FLAGS.sigterm_agent:
    period = chunk_period()
    print(f"\n{FLAGS.sigterm_agent} on {FLAGS.env}, 2 seeds: {period:.2f} s from one chunk's "
          "metrics to the next's (train + evaluate + checkpoint)")
    print("\n| trial | SIGTERM after chunk 1's metrics (s) | SIGTERM to exit (s) | exit status | "
          "chunks done |")
    print("|---|---|---|---|---|")
    for i in range(FLAGS.sigterm_trials):
      r = sigterm_trial(delay=period * (i + 0.5) / FLAGS.sigterm_trials)
      print(f"| {i} | {r['delay']:.2f} | {r['sigterm_to_exit_seconds']:.2f} | "
            f"{r['returncode']} | {r['chunks_done']} |", flush=True)


if __name__ == "__main__":
  app.run(main)
