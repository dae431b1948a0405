r"""The SharpeRatio@k workflow's wall time, ours against SCOPE-RL's: offline training of the
candidates, OPE and selection, on the same dataset with the same candidate configurations.

    python -m benchmarks.ops_workflow --dataset=runs/datasets/cartpole_swingup/medium \
        --env=dmc/cartpole_swingup --workdir=runs/ops/workflow \
        --scope_python=/tmp/venv-scope/bin/python   # scope-rl 0.2.1 with d3rlpy 2.8.1

Candidates on both sides: TD3+BC and IQL (`--agents`) × `--num_seeds` seeds × the
`--num_evals` checkpoints of a `--grad_steps` run, acting deterministically.

- Ours: one `experiments.ops` process (seeds vmapped; FQE, the 7 estimators, CD-OPE and the
  selection metrics; --mwl_steps=0, as SCOPE-RL's pipeline here has no marginal
  estimators). Its stage timings come from ops_summary.json.
- SCOPE-RL's: d3rlpy trains each agent and seed in its own process
  (`benchmarks/d3rlpy_side.py --checkpoints`, one process per seed as d3rlpy has no
  seed vmapping), then `benchmarks/scope_rl_pipeline.py` runs SCOPE-RL's CreateOPEInput
  (d3rlpy's FQE), OffPolicyEvaluation and OffPolicySelection on the exported actors, with
  the FQE steps, network, batch and learning rate of ours (steps_per_stage × T).

The true values of SCOPE-RL's candidates (for its selection metrics) are Monte-Carlo
returns on our env, computed here and not timed; ours are part of our ops run and timed
as their own stage, which the ratio leaves out. What the rows hold: "training" is our ops
run's time to its trained candidates (dataset load, compilation, and the runner's 2
evaluation episodes per checkpoint included) against the d3rlpy processes' wall time
(Python and torch start-up, dataset building and the export check included; d3rlpy's
`fit` alone is printed too); "OPE" is FQE and the estimators on both sides (our first
call, compilation included; SCOPE-RL without a warm-up); our "selection" also holds the
CDF estimators and the risk metrics, which SCOPE-RL's pipeline here does not run. torch
gets --threads threads (default: every core), as XLA does. SCOPE-RL needs every trajectory to last
T steps, so the dataset must have no early termination (dmc/ tasks, brax/halfcheetah).
Writes <workdir>/ops_workflow.json and prints the table.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", None, "Logged-data path (no extension), fixed-length trajectories.")
flags.DEFINE_string("env", None, "Env of the dataset (true values only).")
flags.DEFINE_multi_string("env_arg", [], "Env argument, key=value, as the dataset was logged "
                          "(e.g. episode_length=100); passed to experiments.ops too.")
flags.DEFINE_string("workdir", None, "Output directory.")
flags.DEFINE_string("scope_python", None, "Python of a virtualenv with scope-rl 0.2.1 and d3rlpy 2.8.1.")
flags.DEFINE_list("agents", ["td3_bc", "iql"], "Offline agents (both sides have them).")
flags.DEFINE_integer("num_seeds", 2, "Seeds per agent.")
flags.DEFINE_integer("grad_steps", 20_000, "Gradient steps per seed.")
flags.DEFINE_integer("num_evals", 4, "Checkpoints per run: the candidates.")
flags.DEFINE_integer("fqe_steps_per_stage", 50, "FQE steps per stage (ours); SCOPE-RL gets T times it.")
flags.DEFINE_integer("true_episodes", 64, "Episodes per SCOPE-RL candidate for its true value.")
flags.DEFINE_float("bandwidth", 0.3, "Action kernel bandwidth.")
flags.DEFINE_float("discount", None, "Discount; default: the dataset's.")
flags.DEFINE_integer("threads", None, "torch threads on SCOPE-RL's side; default: the CPU count "
                     "(XLA uses every core on ours).")
STEPS_PER_UPDATE = 1000   # the offline agents' grad_steps per update: our checkpoints fall on them

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd: list[str], log_path: str) -> float:
  """Runs cmd from the repo root, its output into log_path; exits on failure -> seconds."""
  start = time.perf_counter()
  with open(log_path, "w") as log:
    done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
  if done.returncode:
    with open(log_path) as f:
      tail = f.read()[-3000:]
    sys.exit(f"error: {' '.join(cmd[:3])} ... failed (log {log_path}):\n{tail}")
  return time.perf_counter() - start


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not (FLAGS.dataset and FLAGS.env and FLAGS.workdir and FLAGS.scope_python):
    sys.exit("error: --dataset, --env, --workdir and --scope_python are required")
  bad = [a for a in FLAGS.agents if a not in ("td3_bc", "iql")]
  if bad:
    sys.exit(f"error: --agents takes td3_bc and iql (d3rlpy has both), got {bad}")
  if FLAGS.num_evals < 1 or FLAGS.grad_steps % (FLAGS.num_evals * STEPS_PER_UPDATE):
    sys.exit(f"error: --grad_steps must be a multiple of --num_evals x {STEPS_PER_UPDATE} (our runs "
             "checkpoint between updates of that many steps), so that both sides' checkpoints "
             f"fall on the same steps; got {FLAGS.grad_steps} and {FLAGS.num_evals}")
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np

  import envs
  from benchmarks.d3rlpy_side import jax_policy
  from evaluation import data as data_lib
  from evaluation.ope import FQEConfig
  from experiments.agents import parse_overrides

  threads = FLAGS.threads or os.cpu_count()
  data = data_lib.load(FLAGS.dataset)
  if bool(np.any(np.asarray(data.terminated))) or bool(np.any(np.asarray(data.truncated)[:, :-1])):
    sys.exit(f"error: {FLAGS.dataset} has trajectories that end before step T; SCOPE-RL needs "
             "every trajectory to last T steps (use a dmc/ task or brax/halfcheetah)")
  if FLAGS.discount is None and "discount" not in data.metadata:
    sys.exit(f"error: {FLAGS.dataset}.json records no discount; pass --discount")
  discount = float(data.metadata["discount"] if FLAGS.discount is None else FLAGS.discount)
  n, horizon = data.reward.shape
  os.makedirs(FLAGS.workdir, exist_ok=True)
  common = [f"--num_seeds={FLAGS.num_seeds}", f"--grad_steps={FLAGS.grad_steps}",
            f"--num_evals={FLAGS.num_evals}"]
  # A workdir serves one setting: its cached runs and timings are reused only for it.
  setting = {k: FLAGS[k].value for k in ("dataset", "env", "agents", "num_seeds", "grad_steps",
                                          "num_evals", "fqe_steps_per_stage", "bandwidth")}
  if FLAGS.env_arg:  # (not keyed when empty: workdirs written before the flag stay valid)
    setting["env_arg"] = FLAGS.env_arg
  setting_path = os.path.join(FLAGS.workdir, "setting.json")
  if os.path.exists(setting_path):
    with open(setting_path) as f:
      if json.load(f) != json.loads(json.dumps(setting)):
        sys.exit(f"error: {FLAGS.workdir} holds a run with other settings ({setting_path}); "
                 "use another --workdir")
  with open(setting_path, "w") as f:
    json.dump(setting, f, indent=1)

  # Ours: one process from scratch (a finished one is reused: its timings are kept).
  ours_dir = os.path.join(FLAGS.workdir, "ours")
  summary_path = os.path.join(ours_dir, "ops_summary.json")
  if not os.path.exists(summary_path):
    if os.path.exists(os.path.join(ours_dir, "candidates")):
      sys.exit(f"error: {ours_dir} holds candidate runs of an interrupted run; a resumed run "
               "would not time their training: remove it")
    print("ours: experiments.ops", flush=True)
    ours_wall = run([sys.executable, "-m", "experiments.ops", f"--dataset={FLAGS.dataset}",
                     f"--env={FLAGS.env}", f"--workdir={ours_dir}", f"--agents={','.join(FLAGS.agents)}",
                     f"--fqe_steps_per_stage={FLAGS.fqe_steps_per_stage}", f"--bandwidth={FLAGS.bandwidth}",
                     f"--discount={discount}", "--mwl_steps=0", *common,
                     *(f"--env_arg={a}" for a in FLAGS.env_arg)],
                    os.path.join(FLAGS.workdir, "ours.log"))
    with open(summary_path) as f:
      ours = json.load(f)
    ours["process_seconds"] = ours_wall
    with open(summary_path, "w") as f:
      json.dump(ours, f, indent=1)
  with open(summary_path) as f:
    ours = json.load(f)

  # SCOPE-RL's: d3rlpy training, one process per agent and seed.
  scope_dir = os.path.join(FLAGS.workdir, "scope_rl")
  os.makedirs(scope_dir, exist_ok=True)
  side = os.path.join(ROOT, "benchmarks", "d3rlpy_side.py")
  train_seconds, fit_seconds, actors = 0.0, 0.0, []
  for agent in FLAGS.agents:
    for seed in range(FLAGS.num_seeds):
      path = os.path.join(scope_dir, f"{agent}_seed{seed}.npz")
      if not os.path.exists(path):
        print(f"d3rlpy: {agent} seed {seed}", flush=True)
        wall = run([FLAGS.scope_python, side, "--mode=train", f"--algo={agent}",
                    f"--dataset={os.path.abspath(FLAGS.dataset)}", f"--steps={FLAGS.grad_steps}",
                    f"--seed={seed}", f"--checkpoints={FLAGS.num_evals}", f"--threads={threads}",
                    f"--out={path}.tmp.npz"],
                   os.path.join(scope_dir, f"{agent}_seed{seed}.log"))
        with np.load(path + ".tmp.npz") as f:
          arrays = {k: f[k] for k in f.files}
        np.savez(path + ".tmp.npz", **arrays, process_seconds=np.float64(wall))
        os.replace(path + ".tmp.npz", path)
      with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
      train_seconds += float(arrays["process_seconds"])
      fit_seconds += float(arrays["fit_seconds"])
      for c in range(1, FLAGS.num_evals + 1):   # ops' candidate order: checkpoint-major
        actors.append(((agent, c, seed), {k[len(f"ckpt{c}_"):]: v for k, v in arrays.items()
                                           if k.startswith(f"ckpt{c}_")}))
  actors.sort(key=lambda x: (FLAGS.agents.index(x[0][0]), x[0][1], x[0][2]))
  ours_labels = [(c["agent"], c["checkpoint"], c["seed"]) for c in ours["candidates"]]
  if ours_labels != [a[0] for a in actors]:
    sys.exit(f"error: the two sides' candidates differ: ours {ours_labels}, SCOPE-RL's "
             f"{[a[0] for a in actors]}")

  # True values of SCOPE-RL's candidates on our env (untimed), then the export.
  env = envs.make(FLAGS.env, **parse_overrides(list(FLAGS.env_arg), {}, "--env_arg"))
  true_values = []
  for i, (_, w) in enumerate(actors):
    g = jax.jit(lambda k, p=jax_policy(w): envs.episode_returns(
        env, p, k, FLAGS.true_episodes, max_steps=horizon, discount=discount))(jax.random.PRNGKey(i))
    true_values.append(float(np.mean(np.asarray(g))))
  fqe = FQEConfig(steps_per_stage=FLAGS.fqe_steps_per_stage)
  np.savez(os.path.join(scope_dir, "datasets.npz"),
           **{k: np.asarray(getattr(data, k))[None] for k in
              ("obs", "action", "reward", "terminated", "truncated", "behavior_log_prob")})
  policies = {}
  num_layers = len([k for k in actors[0][1] if k.startswith("W")])
  obs_dim = data.obs.shape[-1]
  for p, (_, w) in enumerate(actors):
    for i in range(num_layers):
      policies[f"p{p}_kernel{i}"], policies[f"p{p}_bias{i}"] = w[f"W{i}"], w[f"b{i}"]
    policies[f"p{p}_obs_mean"] = w.get("obs_mean", np.zeros(obs_dim, np.float32))
    policies[f"p{p}_obs_std"] = w.get("obs_scale", np.ones(obs_dim, np.float32))
  np.savez(os.path.join(scope_dir, "policies.npz"), **policies)
  behavior_value = float(np.mean(np.asarray(data_lib.discounted_returns(data, discount))))
  meta = {"num_candidates": len(actors), "num_layers": num_layers, "activation": "relu",
          "action_size": int(data.action.shape[-1]), "obs_clip": 1e9, "gamma": discount,
          "bandwidth": FLAGS.bandwidth,
          "fqe": {"hidden": list(fqe.hidden), "learning_rate": fqe.learning_rate,
                  "batch_size": int(min(n, fqe.batch_size)), "n_steps": fqe.total_steps(horizon)},
          "true_values": true_values, "behavior_value": behavior_value,
          "safety_threshold": behavior_value, "max_topk": len(actors), "seed": 0}
  with open(os.path.join(scope_dir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
  pipeline_json = os.path.join(scope_dir, "scope_rl_pipeline.json")
  if not os.path.exists(pipeline_json):
    print(f"SCOPE-RL: OPE and selection of {len(actors)} candidates", flush=True)
    run([FLAGS.scope_python, os.path.join(ROOT, "benchmarks", "scope_rl_pipeline.py"),
         f"--dir={scope_dir}", "--no_warmup", f"--threads={threads}"],
        os.path.join(scope_dir, "pipeline.log"))
  with open(pipeline_json) as f:
    pipeline = json.load(f)
  scope = pipeline["totals"]

  t = ours["timing"]
  ours_ope = t["ope_seconds"] + t["selection_seconds"]
  ours_total = t["candidates_seconds"] + ours_ope
  scope_ope = scope["fqe_seconds"] + scope["estimators_seconds"] + scope["selection_seconds"]
  scope_total = train_seconds + scope_ope
  rows = [("training (processes)", t["candidates_seconds"], train_seconds),
          ("OPE (FQE + estimators)", t["ope_seconds"], scope["fqe_seconds"] + scope["estimators_seconds"]),
          ("selection", t["selection_seconds"], scope["selection_seconds"]),
          ("whole workflow, without true values", ours_total, scope_total)]
  out = {"dataset": FLAGS.dataset, "env": FLAGS.env, "candidates": len(actors),
         "trajectories": n, "horizon": horizon, "grad_steps": FLAGS.grad_steps,
         "fqe_steps": fqe.total_steps(horizon), "ours": t, "scope_rl": scope,
         "d3rlpy_train_process_seconds": train_seconds, "d3rlpy_fit_seconds": fit_seconds,
         "ours_true_values_seconds": t["true_values_seconds"],
         "rows": [{"stage": r[0], "ours": r[1], "scope_rl": r[2], "ratio": r[2] / r[1]} for r in rows],
         "scope_true_values": true_values, "torch_threads": pipeline["torch_threads"],
         "jax_backend": jax.default_backend(), "cpu_count": os.cpu_count()}
  with open(os.path.join(FLAGS.workdir, "ops_workflow.json"), "w") as f:
    json.dump(out, f, indent=1)
  print(f"\n{len(actors)} candidates ({', '.join(FLAGS.agents)} x {FLAGS.num_seeds} seeds x "
        f"{FLAGS.num_evals} checkpoints, {FLAGS.grad_steps} steps), {n} trajectories x {horizon} steps")
  print("| stage | ours (s) | SCOPE-RL + d3rlpy (s) | ratio |\n|---|---|---|---|")
  for r in out["rows"]:
    print(f"| {r['stage']} | {r['ours']:.1f} | {r['scope_rl']:.1f} | {r['ratio']:.1f}x |")
  print(f"(d3rlpy's fit alone {fit_seconds:.1f} s; our true values {t['true_values_seconds']:.1f} s, untimed "
        f"on SCOPE-RL's side; torch threads {pipeline['torch_threads']}, jax on {jax.default_backend()})")


if __name__ == "__main__":
  app.run(main)
