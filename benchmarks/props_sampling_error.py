r"""PROPS vs PPO with a buffer vs on-policy PPO (and on-policy MDPO vs PPO): sampling
error over training and return at equal env steps, IQM with bootstrap CIs (rliable).

    python -m benchmarks.props_sampling_error --env=dmc/cartpole_swingup --total_steps=300000 \
        --num_seeds=5 --out=/tmp/props_cartpole

Variants (all seeds of one variant vmapped in one jitted function per chunk):
  props        PROPS (`algorithms.props` defaults: b = 2, n = 2048, m = 256)
  ppo_buffer   the same agent with props=False: PPO on the last b = 2 batches
  ppo          props=False, b = 1: on-policy PPO with the same PPO settings
  mdpo         on-policy MDPO (`algorithms.mdpo`), batch 2048
  ppo_mdpo     our PPO (`algorithms.ppo`) at MDPO's batch and networks, for the MDPO comparison
The first three log the sampling error (KL of the MLE-fitted empirical policy of the
buffer to the target, `evaluation.sampling_error`) before every target update.

Writes <out>.json (per variant: env steps, eval returns [seeds, evals], sampling error
[seeds, updates], seconds per update) and <out>.png (return and sampling error vs env
steps: IQM over seeds with 95% stratified-bootstrap CIs), and prints markdown tables.
"""

import json
import time

import jax
import numpy as np
from absl import app, flags

import envs
from algorithms import mdpo, ppo, props
from experiments.agents import parse_overrides

FLAGS = flags.FLAGS
flags.DEFINE_string("env", "dmc/cartpole_swingup", "Env name.")
flags.DEFINE_integer("total_steps", 300_000, "Env steps per seed.")
flags.DEFINE_integer("num_seeds", 5, "Seeds per variant.")
flags.DEFINE_list("variants", ["props", "ppo_buffer", "ppo"], "Variants to run (see doc).")
flags.DEFINE_integer("num_evals", 10, "Evaluations over the run.")
flags.DEFINE_integer("eval_episodes", 8, "Episodes per evaluation (deterministic policy).")
flags.DEFINE_integer("se_epochs", 50, "Epochs of the empirical-policy fit (0: no SE).")
flags.DEFINE_multi_string("override", [], "PROPSConfig override for the first three, key=value.")
flags.DEFINE_string("out", "/tmp/props_benchmark", "Output path prefix.")
flags.DEFINE_integer("seed", 0, "PRNG seed.")


def make(variant: str, env):
  """(agent, its config) for a variant name."""
  if variant in ("props", "ppo_buffer", "ppo"):
    defaults = {f: getattr(props.PROPSConfig(), f) for f in props.PROPSConfig.__dataclass_fields__}
    kw = parse_overrides(FLAGS.override, defaults, "--override")
    kw.update(total_steps=FLAGS.total_steps, sampling_error_epochs=FLAGS.se_epochs,
              props=variant == "props")
    if variant == "ppo":
      kw["buffer_batches"] = 1
    config = props.PROPSConfig(**kw)
    return props.make_agent(config, env), config
  if variant == "mdpo":
    config = mdpo.MDPOConfig(total_steps=FLAGS.total_steps)
    return mdpo.make_agent(config, env), config
  if variant == "ppo_mdpo":
    config = ppo.PPOConfig(num_envs=64, unroll_length=32, activation="tanh")
    return ppo.make_agent(config, env), config
  raise ValueError(f"unknown variant {variant!r}")


def iqm_ci(scores: np.ndarray):
  """IQM over seeds and its 95% bootstrap CI per column: scores [seeds, E] -> 3 x [E]."""
  from rliable import library, metrics  # pylint: disable=import-outside-toplevel
  iqm, lo, hi = [], [], []
  for col in scores.T:
    point, ci = library.get_interval_estimates(
        {"x": col[:, None]}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=2000)
    iqm.append(point["x"][0])
    lo.append(ci["x"][0, 0])
    hi.append(ci["x"][1, 0])
  return np.array(iqm), np.array(lo), np.array(hi)


def run_variant(variant: str, env):
  agent, config = make(variant, env)
  num_updates = -(-FLAGS.total_steps // agent.steps_per_update)
  per_chunk = max(num_updates // FLAGS.num_evals, 1)
  chunks = -(-num_updates // per_chunk)

  def evaluate(state, key):
    policy = agent.make_policy(agent.policy_params(state), True)
    return envs.episode_returns(env, policy, key, FLAGS.eval_episodes)

  def chunk(state, key):
    state, metrics = jax.lax.scan(lambda s, _: agent.update(s), state, None, length=per_chunk)
    return state, metrics, evaluate(state, key).mean()

  init = jax.jit(jax.vmap(agent.init))
  step = jax.jit(jax.vmap(chunk))
  keys = jax.random.split(jax.random.PRNGKey(FLAGS.seed), FLAGS.num_seeds)
  state = init(keys)
  returns, se, times = [], [], []
  for c in range(chunks):
    t = time.time()
    state, metrics, ret = jax.block_until_ready(
        step(state, jax.vmap(lambda k: jax.random.fold_in(k, c))(keys)))
    times.append(time.time() - t)
    returns.append(np.asarray(ret))
    if "sampling_error" in metrics:
      se.append(np.asarray(metrics["sampling_error"]))
    print(f"  {variant} chunk {c + 1}/{chunks}: return {np.mean(ret):.1f} ({times[-1]:.0f}s)",
          flush=True)
  steps = [(c + 1) * per_chunk * agent.steps_per_update for c in range(chunks)]
  return {"config": {k: str(v) for k, v in vars(config).items()},
          "env_steps": steps, "returns": np.stack(returns, 1).tolist(),
          "sampling_error": np.concatenate(se, 1).tolist() if se else None,
          "update_env_steps": agent.steps_per_update,
          "seconds_per_update": float(np.median(times[1:] if len(times) > 1 else times)) / per_chunk,
          "compile_and_first_chunk_seconds": times[0]}


def main(argv):
  del argv
  env = envs.make(FLAGS.env)
  results = {"env": FLAGS.env, "total_steps": FLAGS.total_steps, "num_seeds": FLAGS.num_seeds,
             "se_epochs": FLAGS.se_epochs, "variants": {}}
  for v in FLAGS.variants:
    print(f"{v}:", flush=True)
    results["variants"][v] = run_variant(v, env)
    with open(FLAGS.out + ".json", "w") as f:
      json.dump(results, f)
  report(results)


def report(results):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  variants = results["variants"]
  with_se = {k: v for k, v in variants.items() if v["sampling_error"]}
  fig, axes = plt.subplots(1, 2 if with_se else 1, figsize=(11 if with_se else 6, 4), dpi=120,
                           squeeze=False)
  print(f"\n{results['env']}, {results['num_seeds']} seeds, {results['total_steps']:,} env steps")
  print("| variant | final return IQM [95% CI] | mean sampling error IQM [95% CI] | s / 1k env steps |")
  print("|---|---|---|---|")
  for name, v in variants.items():
    ret = np.asarray(v["returns"])
    iqm, lo, hi = iqm_ci(ret)
    axes[0, 0].plot(v["env_steps"], iqm, label=name)
    axes[0, 0].fill_between(v["env_steps"], lo, hi, alpha=0.2)
    se_txt = "–"
    if v["sampling_error"]:
      se = np.asarray(v["sampling_error"])
      s_iqm, s_lo, s_hi = iqm_ci(se.mean(1, keepdims=True))
      se_txt = f"{s_iqm[0]:.4f} [{s_lo[0]:.4f}, {s_hi[0]:.4f}]"
      steps = (np.arange(se.shape[1]) + 1) * v["update_env_steps"]
      c_iqm, c_lo, c_hi = iqm_ci(se)
      axes[0, 1].plot(steps, c_iqm, label=name)
      axes[0, 1].fill_between(steps, c_lo, c_hi, alpha=0.2)
    cost = v["seconds_per_update"] / v["update_env_steps"] * 1000
    print(f"| {name} | {iqm[-1]:.1f} [{lo[-1]:.1f}, {hi[-1]:.1f}] | {se_txt} | {cost:.3f} |")
  axes[0, 0].set(xlabel="env steps", ylabel="return (IQM, 95% CI)", title=results["env"])
  axes[0, 0].legend()
  if with_se:
    axes[0, 1].set(xlabel="env steps", ylabel="sampling error (IQM, 95% CI)", yscale="log",
                   title="KL(empirical ‖ target) of the buffer")
    axes[0, 1].legend()
  fig.tight_layout()
  fig.savefig(FLAGS.out + ".png")
  print(f"wrote {FLAGS.out}.json and {FLAGS.out}.png")


if __name__ == "__main__":
  app.run(main)
