r"""PPO speed on CPU/GPU: ours vs Brax's PPO, vs raw env stepping, and over seeds.

    python -m benchmarks.ppo_throughput --env=brax/inverted_pendulum \
        --brax_python=/tmp/venv-brax/bin/python

Prints one table (and --out JSON) with, for the same env, num_envs, unroll,
minibatches, epochs and networks:
  * raw env rate: one jitted scan of the batched, auto-resetting env with the episode
    limit of training and actions sampled from the initial policy;
  * our PPO training steps/s (compile excluded), per auto-reset mode, and its ratio to
    the raw env rate;
  * Brax's own PPO steps/s (run by --brax_python, a virtualenv with jax 0.8.2 where
    brax.training still runs) and our/their ratio;
  * wall time of 1, 4 and 8 seeds vmapped (sharded over devices when several, e.g.
    XLA_FLAGS=--xla_force_host_platform_device_count=2 for two CPU cores), and the
    compile time of the train function.
"""

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

import envs
from algorithms import ppo
from algorithms.common.rollout import rollout
from experiments.runner import seed_sharding

FLAGS = flags.FLAGS
flags.DEFINE_string("env", "brax/inverted_pendulum", "Env name.")
flags.DEFINE_integer("num_envs", 64, "Parallel envs per seed.")
flags.DEFINE_integer("unroll_length", 32, "Steps per env per update.")
flags.DEFINE_integer("num_minibatches", 8, "Minibatches per epoch.")
flags.DEFINE_integer("num_epochs", 4, "Epochs per update.")
flags.DEFINE_integer("total_steps", 262_144, "Env steps per seed for each timing.")
flags.DEFINE_list("seeds", ["1", "4", "8"], "Seed counts to time.")
flags.DEFINE_string("brax_python", None, "Python of a virtualenv with brax 0.14.2 + jax 0.8.2.")
flags.DEFINE_string("out", None, "Write the results as JSON here.")


def _timed(fn, *args):
  """(compile seconds, run seconds, output) of jitted fn on args."""
  t = time.time()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.time() - t
  t = time.time()
  out = jax.block_until_ready(compiled(*args))
  return compile_s, time.time() - t, out


def raw_env_rate(env, agent, steps):
  """Env steps/s of a batch stepping with the initial policy's actions (no learning)."""
  state = agent.init(jax.random.PRNGKey(0))
  policy = agent.make_policy(agent.policy_params(state), False)
  length = steps // FLAGS.num_envs

  def run(env_state, key):
    act = lambda obs, k: (policy(obs, k), {})
    final, tr = rollout(env, env_state, act, key, length)
    # Consume the observations too: a constant reward alone lets XLA drop the physics.
    return tr.reward.sum() + tr.obs.sum() + final.obs.sum()

  _, seconds, _ = _timed(run, state.env_state, jax.random.PRNGKey(1))
  return length * FLAGS.num_envs / seconds


def our_ppo(env, config, num_seeds):
  """(compile s, run s, steps/s over all seeds) of jit(vmap(train)) for num_seeds."""
  train = jax.vmap(ppo.make_train(config, env, FLAGS.total_steps))
  keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
  sharding = seed_sharding(num_seeds)
  if sharding is not None:
    keys = jax.device_put(keys, sharding)
  compile_s, run_s, (_, metrics) = _timed(train, keys)
  steps = metrics["policy_loss"].shape[1] * config.num_envs * config.unroll_length * num_seeds
  return compile_s, run_s, steps / run_s


def brax_reference(task):
  cmd = [FLAGS.brax_python, os.path.join(os.path.dirname(__file__), "brax_ppo_reference.py"),
         f"--env={task}", f"--num_envs={FLAGS.num_envs}",
         f"--unroll_length={FLAGS.unroll_length}", f"--num_minibatches={FLAGS.num_minibatches}",
         f"--num_epochs={FLAGS.num_epochs}", f"--total_steps={FLAGS.total_steps}"]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(_):
  logging.set_verbosity(logging.WARNING)
  config = ppo.PPOConfig(num_envs=FLAGS.num_envs, unroll_length=FLAGS.unroll_length,
                         num_minibatches=FLAGS.num_minibatches, num_epochs=FLAGS.num_epochs)
  results = {"env": FLAGS.env, "device": str(jax.devices()[0].device_kind),
             "num_devices": jax.device_count(),
             "num_envs": FLAGS.num_envs, "unroll_length": FLAGS.unroll_length,
             "total_steps": FLAGS.total_steps, "jax": jax.__version__}
  for mode in ("fresh", "cached"):
    env = envs.make(FLAGS.env, auto_reset=mode)
    agent = ppo.make_agent(config, env)
    raw = raw_env_rate(env, agent, FLAGS.total_steps)
    compile_s, run_s, sps = our_ppo(env, config, 1)
    results[mode] = {"raw_env_sps": raw, "ppo_sps": sps, "ppo_over_raw": sps / raw,
                     "compile_seconds": compile_s, "run_seconds": run_s}
    print(f"[{mode}] raw env {raw:,.0f} steps/s; PPO {sps:,.0f} steps/s "
          f"({sps / raw:.2f} of raw); compile {compile_s:.1f}s", flush=True)

  env = envs.make(FLAGS.env)
  seeds = {}
  for n in map(int, FLAGS.seeds):
    compile_s, run_s, sps = our_ppo(env, config, n)
    seeds[n] = {"run_seconds": run_s, "compile_seconds": compile_s, "steps_per_second": sps}
    print(f"[seeds={n}] {run_s:.1f}s run, {compile_s:.1f}s compile, {sps:,.0f} steps/s", flush=True)
  base = seeds[min(seeds)]["run_seconds"]
  for n in seeds:
    seeds[n]["wall_over_one_seed"] = seeds[n]["run_seconds"] / base
  results["seeds"] = seeds

  if FLAGS.brax_python:
    ref = brax_reference(FLAGS.env.split("/", 1)[1])
    results["brax"] = ref
    for mode in ("fresh", "cached"):
      results[mode]["ours_over_brax"] = results[mode]["ppo_sps"] / ref["steps_per_second"]
    print(f"[brax {ref['jax']}] {ref['steps_per_second']:,.0f} steps/s", flush=True)

  print(f"\n{jax.device_count()} device(s): {jax.devices()[0].device_kind}")
  print("\n| measure | value |\n|---|---|")
  for mode in ("fresh", "cached"):
    r = results[mode]
    print(f"| raw env steps/s ({mode} auto-reset) | {r['raw_env_sps']:,.0f} |")
    print(f"| our PPO steps/s ({mode}) | {r['ppo_sps']:,.0f} |")
    print(f"| our PPO / raw env ({mode}) | {r['ppo_over_raw']:.2f} |")
    if "ours_over_brax" in r:
      print(f"| our PPO / Brax PPO ({mode}) | {r['ours_over_brax']:.2f}x |")
  if "brax" in results:
    print(f"| Brax PPO steps/s (cached first-state auto-reset) | {results['brax']['steps_per_second']:,.0f} |")
  for n, s in seeds.items():
    print(f"| {n} seeds vmapped: run s (x one seed) | {s['run_seconds']:.1f} ({s['wall_over_one_seed']:.2f}x) |")
  print(f"| compile of jit(vmap(train)), 1 seed | {seeds[min(seeds)]['compile_seconds']:.1f} s |")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
