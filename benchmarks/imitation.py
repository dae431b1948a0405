r"""Imitation benchmark: normalised return vs env steps, AILBoost vs DAC, K expert episodes.

    python -m benchmarks.imitation --runs=runs/imitation --demos=runs/demos \
        --tasks=cartpole_balance,cartpole_swingup --out=benchmarks/figures/imitation

Reads the training runs `<runs>/<agent>_<task>_<K>` (written by `experiments.train
--agent=dac|dac_ailboost|ailboost|ailboost_dacdisc --env=dmc/<task>
--demos=<demos>/<task>_<K>`, see BENCHMARKS.md for
the exact commands) and normalises every evaluation return as (R − R_random) /
(R_expert − R_random): R_expert is the mean return of the expert's episodes in
`<demos>/<task>_<expert_k>` (its metadata), R_random the mean return of a uniform random
policy over `--random_episodes` episodes of the same env. Prints a markdown table
(mean ± standard error over seeds at each evaluation, with its env steps) and writes `<out>.png` (one panel
per task) and `<out>.json` (every number behind them). Missing runs are skipped, named.

The training runs' periodic evaluation uses AILBoost's newest weak learner (`make_policy`);
its output policy, the weighted ensemble (`ailboost.mixture_policy`), is evaluated here
from each run's last checkpoint with `--mixture_episodes` episodes per seed.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags, logging

from benchmarks.learning_summary import table
from experiments.aggregate import iqm_ci

FLAGS = flags.FLAGS
flags.DEFINE_string("runs", "runs/imitation", "Directory of the training runs.")
flags.DEFINE_string("demos", "runs/demos", "Directory of the demonstrations <task>_<K>.")
flags.DEFINE_list("tasks", ["cartpole_balance", "cartpole_swingup"], "dmc/ tasks.")
flags.DEFINE_list("agents", ["ailboost", "dac"], "Run names compared: workdirs "
                  "<runs>/<name>_<task>_<K>, e.g. ailboost, dac, or a variant's name.")
flags.DEFINE_list("num_demos", ["1", "4"], "Expert episode counts K compared.")
flags.DEFINE_integer("expert_k", 4, "Demonstration file whose mean return defines expert = 1.")
flags.DEFINE_integer("random_episodes", 64, "Episodes of the uniform random policy.")
flags.DEFINE_integer("mixture_episodes", 16, "Episodes per seed of AILBoost's ensemble "
                     "(mixture) policy at the end (0: skip).")
flags.DEFINE_string("out", "benchmarks/figures/imitation", "Output prefix (.png, .json).")


def random_return(env_name: str, episodes: int, seed: int = 0) -> float:
  """Mean undiscounted return of uniform actions in [-1, 1]^a over `episodes` episodes."""
  # pylint: disable=import-outside-toplevel
  import jax

  import envs
  env = envs.make(env_name)
  policy = lambda obs, k: jax.random.uniform(k, (obs.shape[0], env.action_size), minval=-1.0,
                                            maxval=1.0)
  returns = jax.jit(lambda k: envs.episode_returns(env, policy, k, episodes))(
      jax.random.PRNGKey(seed))
  return float(np.mean(returns))


def mixture_returns(workdir: str, episodes: int, seed: int = 0) -> np.ndarray:
  """AILBoost's output policy, the weighted ensemble of the run's last checkpoint ->
  mean return per seed [seeds] over `episodes` episodes (each draws one member)."""
  # pylint: disable=import-outside-toplevel
  import jax

  import envs
  from algorithms import ailboost
  from experiments import runner
  from experiments.agents import policy_network

  spec = runner.RunSpec(**runner.read_spec(workdir))
  config, env, agent = runner.build(spec)
  policy_net, _ = policy_network(spec.agent, config, env)
  state = runner.load_state(workdir)

  def run(seed_state, key):
    k_member, k_env = jax.random.split(key)
    policy = ailboost.mixture_policy(policy_net, agent.policy_params(seed_state), k_member)
    return envs.episode_returns(env, policy, k_env, episodes).mean()

  keys = jax.random.split(jax.random.PRNGKey(seed), jax.tree.leaves(state)[0].shape[0])
  return np.asarray(jax.jit(jax.vmap(run))(state, keys))


def normalise(returns: np.ndarray, expert: float, random: float) -> np.ndarray:
  """(R − random) / (expert − random), elementwise; expert = 1, random = 0."""
  if expert <= random:
    raise ValueError(f"expert return {expert:g} is not above the random policy's {random:g}")
  return (np.asarray(returns) - random) / (expert - random)


def collect(runs: str, demos: str, tasks, agents, num_demos, expert_k, random_episodes,
            mixture_episodes: int = 0):
  """{task: {expert, random, curves: {agent_K: {steps, normalised [seeds, E]}}}}."""
  out = {}
  for task in tasks:
    meta_path = os.path.join(demos, f"{task}_{expert_k}.json")
    if not os.path.exists(meta_path):
      print(f"skipping {task}: no {meta_path}", file=sys.stderr)
      continue
    with open(meta_path) as f:
      expert = float(json.load(f)["mean_return"])
    rand = random_return(f"dmc/{task}", random_episodes)
    curves = {}
    for agent in agents:
      for k in num_demos:
        workdir = os.path.join(runs, f"{agent}_{task}_{k}")
        if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
          print(f"skipping {workdir}: no metrics", file=sys.stderr)
          continue
        steps, returns = table(workdir)
        curves[f"{agent}_{k}"] = {"steps": steps, "returns": returns.tolist(),
                                  "normalised": normalise(returns, expert, rand).tolist()}
        with open(os.path.join(workdir, "config.json")) as f:
          is_ailboost = json.load(f)["agent"].startswith("ailboost")
        if is_ailboost and mixture_episodes:
          mix = mixture_returns(workdir, mixture_episodes)
          curves[f"{agent}_{k}"]["mixture_normalised"] = normalise(mix, expert, rand).tolist()
    out[task] = {"expert": expert, "random": rand, "curves": curves}
  return out


def _mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  x = np.asarray(x)
  return x.mean(0), x.std(0, ddof=1) / np.sqrt(x.shape[0]) if x.shape[0] > 1 else 0 * x[0]


def markdown(results: dict) -> str:
  """One table per task: rows agent × K, a column per evaluation, "mean ± SE (env steps)"
  (the agents evaluate at different steps: DAC every chunk, AILBoost after whole rounds)."""
  lines = []
  for task, res in results.items():
    lines.append(f"\ndmc/{task}: expert {res['expert']:.1f}, random {res['random']:.1f}")
    curves = res["curves"]
    if not curves:
      continue
    num = max(len(c["steps"]) for c in curves.values())
    lines.append("| agent | K | " + " | ".join(f"eval {i + 1}" for i in range(num)) + " |")
    lines.append("|---|---|" + "---|" * num)
    for name, c in curves.items():
      agent, k = name.rsplit("_", 1)
      mean, se = _mean_se(c["normalised"])
      cells = [f"{m:.2f} ± {e:.2f} ({s / 1000:g}k)" for m, e, s in zip(mean, se, c["steps"])]
      cells += ["–"] * (num - len(cells))
      lines.append(f"| {agent} | {k} | " + " | ".join(cells) + " |")
    lines.append("\nFinal normalised return over seeds, IQM [95% bootstrap CI] (rliable):")
    lines.append("| agent | K | env steps | newest learner / policy | ensemble (mixture) |")
    lines.append("|---|---|---|---|---|")
    for name, c in curves.items():
      agent, k = name.rsplit("_", 1)
      cells = []
      for key in ("normalised", "mixture_normalised"):
        if key not in c:
          cells.append("–")
          continue
        last = np.asarray(c[key])
        last = last[:, -1:] if last.ndim == 2 else last[:, None]
        iqm, lo, hi = iqm_ci(last)
        cells.append(f"{iqm[0]:.2f} [{lo[0]:.2f}, {hi[0]:.2f}]")
      lines.append(f"| {agent} | {k} | {c['steps'][-1] / 1000:g}k | {cells[0]} | {cells[1]} |")
    for name, c in curves.items():
      if "mixture_normalised" in c:
        mean, se = _mean_se(c["mixture_normalised"])
        lines.append(f"{name}: ensemble (mixture) policy at the end {mean:.2f} ± {se:.2f} "
                     f"(newest learner {_mean_se(c['normalised'])[0][-1]:.2f})")
  return "\n".join(lines)


def plot(results: dict, path: str) -> None:
  """Normalised return vs env steps, one panel per task, mean ± SE bands."""
  # pylint: disable=import-outside-toplevel
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
  for ax, (task, res) in zip(axes[0], results.items()):
    for name, c in res["curves"].items():
      agent, k = name.rsplit("_", 1)
      mean, se = _mean_se(c["normalised"])
      steps = np.asarray(c["steps"])
      line, = ax.plot(steps, mean, marker="o", ms=3, label=f"{agent}, K={k}",
                      linestyle="-" if k != "1" else "--")
      ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.2)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set_title(f"dmc/{task}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("normalised return (expert 1, random 0)")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  results = collect(FLAGS.runs, FLAGS.demos, FLAGS.tasks, FLAGS.agents, FLAGS.num_demos,
                    FLAGS.expert_k, FLAGS.random_episodes, FLAGS.mixture_episodes)
  if not results:
    sys.exit("error: no task had demonstrations")
  print(markdown(results))
  os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
  with open(FLAGS.out + ".json", "w") as f:
    json.dump(results, f)
  plot(results, FLAGS.out + ".png")
  print(f"wrote {FLAGS.out}.png, {FLAGS.out}.json")


if __name__ == "__main__":
  app.run(main)
