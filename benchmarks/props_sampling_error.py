r"""PROPS vs PPO with a buffer vs on-policy PPO, and on-policy MDPO vs matched PPO: return
and sampling error at equal env steps, IQM with 95% bootstrap CIs (rliable).

Each variant is one resumable `experiments.train` run (all seeds vmapped) in
<runs>/<variant>: re-running the same command continues where it stopped, so runs of
1M+ steps can be spread over several sittings (`--max_chunks` bounds one sitting).

    python -m benchmarks.props_sampling_error --env=brax/hopper --num_seeds=5 \
        --variants=props,ppo_buffer,ppo,mdpo,ppo_mdpo --runs=runs/props_hopper

Variants:
  props        PROPS with the authors' settings for the task (`props.authors_settings`;
               PROPSConfig defaults, their Hopper row, for other tasks)
  ppo_buffer   PPO with a buffer of b = 2 batches, the authors' n and lr for the task
  ppo          on-policy PPO (b = 1), the authors' n and lr for the task
  mdpo         on-policy MDPO as the authors run it (`algorithms.mdpo` defaults: 1 env ×
               2048 steps, rewards normalised, t_k annealed over 10M steps)
  mdpo_tk_run  the same with t_k annealed over the run's own length (ablation)
  mdpo_raw     the same with raw rewards (ablation: the value clip of 0.2 on raw returns)
  mdpo_old     the configuration reported before issue 11 (64 envs × 32 steps, t_k annealed
               over the run, raw rewards); mdpo_old_norm: the same with rewards normalised
  ppo_mdpo     PPO matched to MDPO: its batch layout, networks, Adam 3e-4 (eps 1e-5),
               gradient clip 0.5, no entropy bonus, value clip 0.2, rewards normalised; PPO's own update
               is 10 epochs × 32 minibatches with clip 0.2 (rl-zoo's PPO2 MuJoCo setting)
The PROPS-family runs log the sampling error (KL of the MLE-fitted empirical policy of
the buffer to the target) before every target update; the chunk means are reported.
`--total_steps` defaults to the paper's budget for the task (1M for Hopper).
`--final_episodes=K` evaluates each variant's last checkpoint again, K episodes per seed,
with the target's mean action (as the runs' own evaluation and the authors'
`sample=False`) and with actions sampled from it, and reports both per seed.

Writes <runs>/summary.json and <runs>/summary.png (return and sampling error vs env
steps) and prints markdown tables.
"""

import json
import os

import numpy as np
from absl import app, flags

from algorithms import props
from experiments import runner
from experiments.aggregate import iqm_ci

FLAGS = flags.FLAGS
flags.DEFINE_string("env", "brax/hopper", "Env name.")
flags.DEFINE_integer("total_steps", 0, "Env steps per seed (0: the paper's budget for the "
                     "task, or 1M).")
flags.DEFINE_integer("num_seeds", 5, "Seeds per variant.")
flags.DEFINE_list("variants", ["props", "ppo_buffer", "ppo"], "Variants to run (see doc).")
flags.DEFINE_integer("num_evals", 20, "Evaluations over the run.")
flags.DEFINE_integer("eval_episodes", 8, "Episodes per evaluation (deterministic policy).")
flags.DEFINE_integer("se_epochs", 50, "Epochs of the empirical-policy fit (0: no SE).")
flags.DEFINE_integer("max_chunks", None, "Stop each variant after this many chunks in this "
                     "call (resume later).")
flags.DEFINE_multi_string("override", [], "Extra override for every PROPS-family run.")
flags.DEFINE_string("runs", "runs/props", "Directory of the variants' workdirs.")
flags.DEFINE_integer("seed", 0, "Base PRNG seed.")
flags.DEFINE_bool("report_only", False, "Only summarise the runs already there.")
flags.DEFINE_integer("final_episodes", 0, "Evaluate each variant's last checkpoint again with "
                     "this many episodes per seed, with the target's mean action and with "
                     "actions sampled from it (0: skip).")

MDPO_VARIANTS = {
    "mdpo": {},
    "mdpo_tk_run": {"tk_horizon_steps": 0},
    "mdpo_raw": {"normalize_rewards": False},
    "mdpo_old": {"num_envs": 64, "unroll_length": 32, "tk_horizon_steps": 0,
                 "normalize_rewards": False},
    "mdpo_old_norm": {"num_envs": 64, "unroll_length": 32, "tk_horizon_steps": 0},
}
PPO_MDPO = dict(num_envs=1, unroll_length=2048, learning_rate=3e-4, max_grad_norm=0.5, adam_eps=1e-5,
                entropy_coef=0.0, value_clip=0.2, normalize_rewards=True, activation="tanh",
                num_minibatches=32, num_epochs=10, clip_eps=0.2)


def _fmt(value) -> str:
  return repr(tuple(value)) if isinstance(value, (list, tuple)) else repr(value)


def variant_spec(variant: str, env: str, total_steps: int) -> runner.RunSpec:
  """The RunSpec of a variant (see module doc)."""
  if variant in props.VARIANTS:
    try:
      kw = props.authors_settings(env, variant)
    except ValueError:
      kw = {"props": variant == "props", "buffer_batches": 1 if variant == "ppo" else 2}
    steps = total_steps or kw.pop("total_steps", 1_000_000)
    kw.pop("total_steps", None)
    kw["sampling_error_epochs"] = FLAGS.se_epochs
    agent = "props"
    extra = list(FLAGS.override)
  elif variant in MDPO_VARIANTS:
    agent, steps, extra, kw = "mdpo", total_steps or 1_000_000, [], dict(MDPO_VARIANTS[variant])
  elif variant == "ppo_mdpo":
    agent, steps, extra, kw = "ppo", total_steps or 1_000_000, [], dict(PPO_MDPO)
  else:
    raise ValueError(f"unknown variant {variant!r}")
  overrides = tuple(f"{k}={_fmt(v)}" for k, v in kw.items()) + tuple(extra)
  return runner.RunSpec(agent=agent, env=env, num_seeds=FLAGS.num_seeds, total_steps=steps,
                        seed=FLAGS.seed, num_evals=FLAGS.num_evals,
                        eval_episodes=FLAGS.eval_episodes, overrides=overrides)


def read_run(workdir: str) -> dict:
  """Per chunk: env steps [C], eval return [seeds, C], sampling error [seeds, C] or None."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  chunks = sorted({r["chunk"] for r in rows if r["chunk"] > 0})
  seeds = sorted({r["seed"] for r in rows})
  at = {(r["chunk"], r["seed"]): r for r in rows}
  ret = np.array([[at[(c, s)]["eval_return"] for c in chunks] for s in seeds])
  se = None
  if chunks and "train/sampling_error" in at[(chunks[0], 0)]:
    se = np.array([[at[(c, s)]["train/sampling_error"] or np.nan for c in chunks] for s in seeds])
  steps = [at[(c, 0)]["env_steps"] for c in chunks]
  summary = {}
  if os.path.exists(os.path.join(workdir, "summary.json")):
    with open(os.path.join(workdir, "summary.json")) as f:
      summary = json.load(f)
  return {"env_steps": steps, "returns": ret, "sampling_error": se, "summary": summary}


def final_returns(workdir: str, episodes: int) -> dict:
  """Mean return per member (seed) of the last checkpoint's target policy over `episodes`
  episodes, {'deterministic': [members], 'sampled': [members]}, the same evaluation keys
  for both."""
  import jax  # pylint: disable=import-outside-toplevel
  import envs  # pylint: disable=import-outside-toplevel
  spec = runner.RunSpec(**runner.read_spec(workdir))
  _, env, agent = runner.build(spec)
  state = runner.load_state(workdir)
  members = jax.tree.leaves(state)[0].shape[0]   # points × seeds for a run with traced fields
  keys = jax.random.split(jax.random.PRNGKey(spec.seed + 7919), members)
  out = {}
  for name, deterministic in (("deterministic", True), ("sampled", False)):
    one = lambda s, k, d=deterministic: envs.episode_returns(
        env, agent.make_policy(agent.policy_params(s), d), k, episodes).mean()
    out[name] = np.asarray(jax.jit(jax.vmap(one))(state, keys)).tolist()
  return out


def report(results: dict, env: str, out: str) -> None:
  """Markdown table and the figure of return and sampling error vs env steps."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  with_se = any(r["sampling_error"] is not None for r in results.values())
  fig, axes = plt.subplots(1, 2 if with_se else 1, figsize=(11 if with_se else 6, 4), dpi=120,
                           squeeze=False)
  print(f"\n{env}, {FLAGS.num_seeds} seeds")
  print("| variant | env steps | final return IQM [95% CI] | sampling error, mean over training, "
        "IQM [95% CI] | sampling error, first / last 20% | env steps / s |")
  print("|---|---|---|---|---|---|")
  table = {}
  for name, r in results.items():
    if not r["env_steps"]:
      continue
    iqm, lo, hi = iqm_ci(r["returns"])
    axes[0, 0].plot(r["env_steps"], iqm, label=name)
    axes[0, 0].fill_between(r["env_steps"], lo, hi, alpha=0.2)
    se_txt, phase_txt = "–", "–"
    row = {"env_steps": r["env_steps"][-1], "return_iqm": [iqm[-1], lo[-1], hi[-1]]}
    if r["sampling_error"] is not None:
      se = r["sampling_error"]
      s_iqm, s_lo, s_hi = iqm_ci(np.nanmean(se, 1, keepdims=True))
      fifth = max(se.shape[1] // 5, 1)
      early, late = np.nanmean(se[:, :fifth]), np.nanmean(se[:, -fifth:])
      se_txt = f"{s_iqm[0]:.4f} [{s_lo[0]:.4f}, {s_hi[0]:.4f}]"
      phase_txt = f"{early:.4f} / {late:.4f}"
      row.update(sampling_error_iqm=[s_iqm[0], s_lo[0], s_hi[0]], se_early=early, se_late=late)
      c_iqm, c_lo, c_hi = iqm_ci(se)
      axes[0, 1].plot(r["env_steps"], c_iqm, label=name)
      axes[0, 1].fill_between(r["env_steps"], c_lo, c_hi, alpha=0.2)
    sps = r["summary"].get("steps_per_second")
    row["steps_per_second"] = sps
    table[name] = row
    print(f"| {name} | {r['env_steps'][-1]:,} | {iqm[-1]:.0f} [{lo[-1]:.0f}, {hi[-1]:.0f}] | "
          f"{se_txt} | {phase_txt} | {sps or float('nan'):.0f} |")
  finals = {name: r["final"] for name, r in results.items() if r.get("final")}
  if finals:
    print(f"\nlast checkpoint again, {FLAGS.final_episodes} episodes per seed: per seed, "
          "mean action / sampled actions (mean over seeds)")
    print("| variant | per seed | mean over seeds |\n|---|---|---|")
    for name, f in finals.items():
      det, smp = f["deterministic"], f["sampled"]
      table.setdefault(name, {})["final"] = f
      print(f"| {name} | " + ", ".join(f"{d:.0f} / {s:.0f}" for d, s in zip(det, smp))
            + f" | {np.mean(det):.0f} / {np.mean(smp):.0f} |")
  axes[0, 0].set(xlabel="env steps", ylabel="return (IQM, 95% CI)", title=env)
  axes[0, 0].legend()
  if with_se:
    axes[0, 1].set(xlabel="env steps", ylabel="sampling error (IQM, 95% CI)", yscale="log",
                   title="KL(empirical ‖ target) of the buffer")
    axes[0, 1].legend()
  fig.tight_layout()
  fig.savefig(out + ".png")
  with open(out + ".json", "w") as f:
    json.dump({"env": env, "variants": table}, f, indent=2)
  print(f"wrote {out}.json and {out}.png")


def main(argv):
  del argv
  if FLAGS.final_episodes < 0:
    raise SystemExit(f"error: --final_episodes must be >= 0, got {FLAGS.final_episodes}")
  results = {}
  for variant in FLAGS.variants:
    spec = variant_spec(variant, FLAGS.env, FLAGS.total_steps)
    workdir = os.path.join(FLAGS.runs, variant)
    if not FLAGS.report_only:
      summary = runner.train(spec, workdir, max_chunks=FLAGS.max_chunks)
      print(f"{variant}: {summary['chunks_done']} chunks, finished={summary['finished']}",
            flush=True)
    if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
      results[variant] = read_run(workdir)
      if FLAGS.final_episodes > 0:
        results[variant]["final"] = final_returns(workdir, FLAGS.final_episodes)
  report(results, FLAGS.env, os.path.join(FLAGS.runs, "summary"))


if __name__ == "__main__":
  app.run(main)
