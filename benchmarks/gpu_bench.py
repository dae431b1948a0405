r"""The GPU figures in one run (benchmarks/gpu.sh runs it): training throughput of PPO at
2048 envs and of SAC, 64 vmapped seeds against 1, and the OPE pipeline's wall time.

    python -m benchmarks.gpu_bench --out=gpu.json [--smoke]

Each stage is a short `experiments.runner` run (compilation timed apart: the runner's
`steps_per_second` counts training chunks only) or one `experiments.ope_sweep` process.
Each stage runs in its own process under its own time cap, cut to what is left of
--budget_seconds, so the whole script ends within the budget whatever one stage does
(the first H100 run lost the OPE stage to the script's outer limit). A stage that fails
or runs out of time is recorded with its error and the tail of its log, timestamped, so
a cut stage still shows how far it got; the JSON is rewritten after every stage.
--smoke shrinks every size so the whole script runs in a few minutes on a CPU (to test
it, not to measure).
"""

import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "gpu.json", "Output JSON.")
flags.DEFINE_bool("smoke", False, "Tiny sizes (a CPU test of the script).")
flags.DEFINE_list("stages", ["ope", "ppo", "sac", "seeds"], "Stages to run, in this order.")
flags.DEFINE_integer("budget_seconds", 480, "Wall time of all the stages together; each stage "
                     "is stopped at its cap or at what is left of this, whichever comes first "
                     "(--smoke: 4x this and 4x the caps, for a CPU).")
flags.DEFINE_string("child", None, "Internal: run this one stage in this process.")
flags.DEFINE_multi_string("ope_flag", [], "Extra experiments.ope_sweep flag of the OPE stage "
                          "(e.g. --ope_flag=--policy_steps=50000).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABSL_INFO = re.compile(r"[IW]\d{4} ")  # absl's INFO/WARNING prefix (e.g. orbax's chatter)
# Each stage's cap in seconds, its process's start and imports included: ppo, sac and
# seeds are the H100's in-process walls of 2026-11-27 (69, 88 and 56 + 56 s) plus 26-33 s,
# and ope has the rest of the 480 s.
CAPS = {"ope": 125, "ppo": 95, "sac": 115, "seeds": 145}
_RUNNING = []  # the process group of the stage running now, for the SIGTERM handler


def _kill_group(pid: int) -> None:
  try:
    os.killpg(pid, signal.SIGKILL)
  except ProcessLookupError:
    pass


def _on_sigterm(signum, frame):
  """gpu.sh's outer `timeout` (or a user) stops us: stop the stage too, which runs in its
  own session and so would not get the signal."""
  del frame
  for pid in _RUNNING:
    _kill_group(pid)
  sys.exit(128 + signum)


def run_capped(cmd, seconds: float, tail: int = 30) -> dict:
  """Runs `cmd` (argv) in its own process group, echoing its output to stderr with the
  elapsed seconds, and kills the group when it exits or after `seconds`, whichever comes
  first -> {"returncode": int | None (cut), "seconds": float, "log_tail": the last `tail`
  lines but absl's INFO/WARNING ones, each "[elapsed s] line"}."""
  import threading  # pylint: disable=import-outside-toplevel
  t = time.time()
  lines = collections.deque(maxlen=tail)
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", start_new_session=True)
  _RUNNING.append(proc.pid)

  def read():
    for line in proc.stdout:
      line = f"[{time.time() - t:6.1f} s] {line.rstrip()}"
      print(line, file=sys.stderr, flush=True)
      if not ABSL_INFO.match(line.split("] ", 1)[1]):
        lines.append(line)

  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  try:
    proc.wait(timeout=seconds)
    cut = False
  except subprocess.TimeoutExpired:
    cut = True
  finally:
    _kill_group(proc.pid)  # nothing the stage started outlives it, nor holds its output
    proc.wait()
    _RUNNING.remove(proc.pid)
  reader.join(timeout=5)
  return {"returncode": None if cut else proc.returncode, "seconds": time.time() - t,
          "log_tail": list(lines)}


def train(agent, env, num_seeds, total_steps, overrides, num_evals=2):
  """One runner run in a temporary workdir -> its throughput figures."""
  from experiments import runner  # pylint: disable=import-outside-toplevel
  spec = runner.RunSpec(agent=agent, env=env, num_seeds=num_seeds, total_steps=total_steps,
                        num_evals=num_evals, eval_episodes=2, overrides=tuple(overrides))
  with tempfile.TemporaryDirectory() as workdir:
    s = runner.train(spec, workdir, progress=False)
  return {"agent": agent, "env": env, "num_seeds": num_seeds, "overrides": list(overrides),
          "env_steps": s["total_steps"] * num_seeds, "steps_per_second": s["steps_per_second"],
          "compile_seconds": s["compile_seconds"], "wall_seconds": s["wall_seconds"],
          "final_return_mean": s["final_return_mean"]}


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  small = FLAGS.smoke
  scale = 4 if small else 1
  # the parent never touches the accelerator (its stages' processes do): the devices and
  # versions come from the first stage that reports them
  out = {"devices": None, "backend": None, "jax": None, "smoke": small,
         "budget_seconds": FLAGS.budget_seconds * scale,
         "caps": {k: v * scale for k, v in CAPS.items()}, "stages": {}}

  def save():
    with open(FLAGS.out, "w") as f:
      json.dump(out, f, indent=1)

  envs_ppo = 64 if small else 2048
  stages = {
      # PPO at 2048 envs on brax/ant (unroll 5, 32 minibatches of 320, 4 epochs)
      "ppo": lambda: train("ppo", "brax/ant", 1, (envs_ppo * 5 * 8) if small else 4_000_000,
                           [f"num_envs={envs_ppo}", "unroll_length=5",
                            f"num_minibatches={4 if small else 32}", "num_epochs=4"]),
      # SAC on brax/ant: 128 envs, one gradient step per 8 env steps (utd_ratio 1/8)
      "sac": lambda: train("sac", "brax/ant", 1, 4_000 if small else 400_000,
                           ["num_envs=128" if not small else "num_envs=8", "batch_size=256",
                            "utd_ratio=0.125",
                            "learning_starts=1024" if not small else "learning_starts=64"]),
      # 64 vmapped seeds against 1 (64 envs each): the speed-up of seeds as a vmap axis
      "seeds": lambda: {str(n): train("ppo", "brax/ant", n, (64 * 5 * 8 * (1 if small else 20)),
                                      ["num_envs=64", "unroll_length=5", "num_minibatches=4"])
                        for n in ((1, 4) if small else (1, 64))},
      # the OPE pipeline: experiments.ope_sweep's default sweep on brax/inverted_pendulum
      "ope": lambda: ope_sweep(small),
  }
  if FLAGS.child:  # one stage, in this process: its result or error to --out
    import jax  # pylint: disable=import-outside-toplevel
    t = time.time()
    out = {"devices": [str(d) for d in jax.devices()], "backend": jax.default_backend(),
           "jax": jax.__version__}
    try:
      out.update(result=stages[FLAGS.child](), seconds=time.time() - t)
    except Exception as e:  # pylint: disable=broad-except
      out.update(error=f"{type(e).__name__}: {e}",
                 traceback=traceback.format_exc()[-3000:], seconds=time.time() - t)
    save()
    return
  for name in FLAGS.stages:
    if name not in stages:
      sys.exit(f"error: unknown stage {name!r}; stages: {', '.join(stages)}")
  signal.signal(signal.SIGTERM, _on_sigterm)
  start = time.time()
  for name in FLAGS.stages:
    left = FLAGS.budget_seconds * scale - (time.time() - start)
    if left < 20:
      out["stages"][name] = {"error": f"not run: {max(left, 0):.0f} s of the budget left"}
      save()
      continue
    cap = min(CAPS[name] * scale, left)
    print(f"stage {name} (cap {cap:.0f} s)", file=sys.stderr, flush=True)
    child_out = f"{FLAGS.out}.{name}"
    if os.path.exists(child_out):
      os.remove(child_out)  # a stale one from a run cut short
    cmd = [sys.executable, "-m", "benchmarks.gpu_bench", f"--child={name}", f"--out={child_out}",
           f"--smoke={str(small).lower()}", f"--verbosity={FLAGS.verbosity}"] + [
               f"--ope_flag={f}" for f in FLAGS.ope_flag]
    run = run_capped(cmd, cap)
    if os.path.exists(child_out):
      try:
        with open(child_out) as f:
          got = json.load(f)
      except ValueError as e:  # cut while writing
        got = {"error": f"unreadable stage output: {e}"}
      os.remove(child_out)
      for key in ("devices", "backend", "jax"):
        out[key] = out[key] or got.pop(key, None)
      out["stages"][name] = got
    else:
      why = (f"timed out after {run['seconds']:.0f} s (cap {cap:.0f} s)"
             if run["returncode"] is None else f"exited with {run['returncode']}")
      out["stages"][name] = {"error": why, "seconds": run["seconds"]}
    out["stages"][name]["log_tail"] = run["log_tail"]
    save()
  if "seeds" in out["stages"] and "result" in out["stages"]["seeds"]:
    r = out["stages"]["seeds"]["result"]
    lo, hi = sorted(r, key=int)
    out["seeds_speedup"] = r[hi]["steps_per_second"] / r[lo]["steps_per_second"]
  save()
  print(json.dumps({k: v for k, v in out.items() if k != "stages"}, indent=1))
  for name, st in out["stages"].items():
    print(name, "error: " + st["error"] if "error" in st else json.dumps(st["result"])[:400])


def ope_sweep(small: bool) -> dict:
  with tempfile.TemporaryDirectory() as workdir:
    # brax/inverted_pendulum: the GPU image has no dm_control (dmc/ at dm_control fidelity
    # reads its suite), and it is too large to carry beside the other wheels
    flags_ = [f"--workdir={workdir}", "--env=brax/inverted_pendulum"]
    if not small:
      # a short candidate run (4 checkpoints of 5k steps): on the H100 it trained at
      # ~585 env steps/s with evaluation, so the default 200k would take the whole budget
      flags_ += ["--policy_steps=20000"]
    if small:
      flags_ += ["--policy_steps=2000", "--num_datasets=2", "--num_trajectories=8",
                 "--true_episodes=4", "--fqe_steps_per_stage=2"]
    flags_ += FLAGS.ope_flag
    t = time.time()
    # its progress goes to our stderr (the log), so a run cut short shows where it was
    done = subprocess.run([sys.executable, "-m", "experiments.ope_sweep", *flags_], cwd=ROOT,
                          check=False)
    seconds = time.time() - t
    if done.returncode:
      raise RuntimeError(f"experiments.ope_sweep exited with {done.returncode} (its log above)")
    with open(os.path.join(workdir, "ope_summary.json")) as f:
      summary = json.load(f)
  return {"wall_seconds": seconds, "flags": flags_[1:], "timing": summary.get("timing")}


if __name__ == "__main__":
  app.run(main)
