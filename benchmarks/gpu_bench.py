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
# Each stage's cap in seconds, process start included: ppo, sac and seeds are the H100's
# walls of 2026-11-27 (69, 88 and 56 + 56 s) with a margin, and ope has the rest.
ABSL_INFO = re.compile(r"[IW]\d{4} ")  # absl's INFO/WARNING prefix (e.g. orbax's chatter)
CAPS = {"ope": 150, "ppo": 90, "sac": 105, "seeds": 140}


def run_capped(cmd, seconds: float, tail: int = 30) -> dict:
  """Runs `cmd` (argv) in its own process group, echoing its output to stderr with the
  elapsed seconds, and kills the group after `seconds` -> {"returncode": int | None (cut),
  "seconds": float, "log_tail": the last `tail` lines, each "[elapsed s] line"}."""
  t = time.time()
  lines = collections.deque(maxlen=tail)
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True)

  def kill():
    try:
      os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass

  import threading  # pylint: disable=import-outside-toplevel
  timer = threading.Timer(seconds, kill)
  timer.start()
  try:
    for line in proc.stdout:
      line = f"[{time.time() - t:6.1f} s] {line.rstrip()}"
      print(line, file=sys.stderr, flush=True)
      if not ABSL_INFO.match(line.split("] ", 1)[1]):  # the tail keeps the stage's own lines
        lines.append(line)
    proc.wait()
  finally:
    timer.cancel()
    kill()  # nothing the stage started outlives it
  cut = proc.returncode == -signal.SIGKILL and time.time() - t >= seconds
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
  if FLAGS.child:
    out = {}
  else:
    import jax  # pylint: disable=import-outside-toplevel
    out = {"devices": [str(d) for d in jax.devices()], "backend": jax.default_backend(),
           "jax": jax.__version__, "smoke": small, "budget_seconds": FLAGS.budget_seconds,
           "caps": CAPS, "stages": {}}

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
    t = time.time()
    try:
      out = {"result": stages[FLAGS.child](), "seconds": time.time() - t}
    except Exception as e:  # pylint: disable=broad-except
      out = {"error": f"{type(e).__name__}: {e}",
             "traceback": traceback.format_exc()[-3000:], "seconds": time.time() - t}
    save()
    return
  for name in FLAGS.stages:
    if name not in stages:
      sys.exit(f"error: unknown stage {name!r}; stages: {', '.join(stages)}")
  start = time.time()
  for name in FLAGS.stages:
    left = FLAGS.budget_seconds * (4 if small else 1) - (time.time() - start)
    if left < 20:
      out["stages"][name] = {"error": f"not run: {max(left, 0):.0f} s of the budget left"}
      save()
      continue
    cap = min(CAPS[name] * (4 if small else 1), left)
    print(f"stage {name} (cap {cap:.0f} s)", file=sys.stderr, flush=True)
    child_out = f"{FLAGS.out}.{name}"
    cmd = [sys.executable, "-m", "benchmarks.gpu_bench", f"--child={name}", f"--out={child_out}",
           f"--smoke={str(small).lower()}"] + [f"--ope_flag={f}" for f in FLAGS.ope_flag]
    run = run_capped(cmd, cap)
    if os.path.exists(child_out):
      with open(child_out) as f:
        out["stages"][name] = json.load(f)
      os.remove(child_out)
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
