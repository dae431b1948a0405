r"""Training speed: ours vs Brax's trainers, vs raw env stepping, and over seeds.

    python -m benchmarks.throughput --agent=ppo --env=brax/inverted_pendulum \
        --brax_python=/tmp/venv-brax/bin/python
    python -m benchmarks.throughput --agent=sac --total_steps=20000 \
        --override num_envs=16 --override unroll_length=1 --brax_python=/tmp/venv-brax/bin/python

Prints a markdown table (and --out JSON) for one env and agent config (defaults plus
--override key=value):
  * our training env steps/s (compile excluded) for each --auto_reset mode;
  * raw env rate (--raw_env): one jitted scan of the same batched, auto-resetting env
    with the episode limit of training and actions from the initial policy, and the
    training rate as a fraction of it;
  * Brax's own trainer on the same settings (ppo, sac), run by --brax_python (a
    virtualenv with jax 0.8.2, where brax.training still runs), and our/their ratio;
  * wall time of each --seeds count vmapped (sharded over devices when several, e.g.
    XLA_FLAGS=--xla_force_host_platform_device_count=2 for two CPU cores), and compile time.
"""

import dataclasses
import json
import os
import subprocess
import time

import jax
from absl import app, flags, logging

import envs
from algorithms.common.agent import make_train
from algorithms.common.rollout import rollout
from experiments.agents import AGENTS, make_config
from experiments.runner import seed_sharding

FLAGS = flags.FLAGS
flags.DEFINE_string("agent", "ppo", "Agent (see experiments.agents).")
flags.DEFINE_string("env", "brax/inverted_pendulum", "Env name.")
flags.DEFINE_multi_string("override", [], "Agent config override, key=value.")
flags.DEFINE_integer("total_steps", 262_144, "Env steps per seed for each timing.")
flags.DEFINE_list("seeds", ["1", "4", "8"], "Seed counts to time.")
flags.DEFINE_list("auto_reset", ["fresh", "cached"], "Auto-reset modes to time (1 seed).")
flags.DEFINE_bool("raw_env", True, "Also time raw env stepping.")
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


def raw_env_rate(env, agent, num_envs, steps):
  """Env steps/s of num_envs envs stepping with the initial policy's actions."""
  state = agent.init(jax.random.PRNGKey(0))
  policy = agent.make_policy(agent.policy_params(state), False)
  length = steps // num_envs

  def run(env_state, key):
    final, tr = rollout(env, env_state, lambda obs, k: (policy(obs, k), {}), key, length)
    # Consume the observations too: a constant reward alone lets XLA drop the physics.
    return tr.reward.sum() + tr.obs.sum() + final.obs.sum()

  _, seconds, _ = _timed(run, state.env_state, jax.random.PRNGKey(1))
  return length * num_envs / seconds


def train_rate(agent, num_seeds):
  """(compile s, run s, env steps/s summed over seeds) of jit(vmap(train))."""
  num_updates = -(-FLAGS.total_steps // agent.steps_per_update)
  keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
  sharding = seed_sharding(num_seeds)
  if sharding is not None:
    keys = jax.device_put(keys, sharding)
  compile_s, run_s, _ = _timed(jax.vmap(make_train(agent, num_updates)), keys)
  # The replay prefill in init is env stepping too; count it.
  steps = (agent.init_steps + num_updates * agent.steps_per_update) * num_seeds
  return compile_s, run_s, steps / run_s


def brax_args(config):
  """Command-line settings of benchmarks/brax_reference.py matching `config`."""
  if FLAGS.agent == "ppo":
    assert tuple(config.policy_hidden) == tuple(config.value_hidden)
    return [f"--num_envs={config.num_envs}", f"--unroll_length={config.unroll_length}",
            f"--num_minibatches={config.num_minibatches}", f"--num_epochs={config.num_epochs}",
            "--hidden", *map(str, config.policy_hidden)]
  assert config.unroll_length == 1, "Brax SAC steps each env once per update"
  return [f"--num_envs={config.num_envs}", f"--batch_size={config.batch_size}",
          f"--grad_updates_per_step={config.grad_steps_per_update}",
          f"--learning_starts={config.learning_starts}", "--hidden", *map(str, config.hidden)]


def main(_):
  logging.set_verbosity(logging.WARNING)
  config = make_config(FLAGS.agent, FLAGS.override)
  make_agent = AGENTS[FLAGS.agent][1]
  results = {"agent": FLAGS.agent, "env": FLAGS.env, "config": dataclasses.asdict(config),
             "device": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
             "total_steps": FLAGS.total_steps, "jax": jax.__version__, "modes": {}}
  rows = []
  for mode in FLAGS.auto_reset:
    env = envs.make(FLAGS.env, auto_reset=mode)
    agent = make_agent(config, env)
    compile_s, _, sps = train_rate(agent, 1)
    r = results["modes"][mode] = {"train_sps": sps, "compile_seconds": compile_s}
    rows.append((f"our {FLAGS.agent} env steps/s, 1 seed ({mode} auto-reset)", f"{sps:,.0f}"))
    if FLAGS.raw_env:
      r["raw_env_sps"] = raw_env_rate(env, agent, config.num_envs, FLAGS.total_steps)
      r["train_over_raw"] = sps / r["raw_env_sps"]
      rows.append((f"raw env steps/s ({mode})", f"{r['raw_env_sps']:,.0f}"))
      rows.append((f"training / raw env ({mode})", f"{r['train_over_raw']:.2f}"))
    print(f"{mode}: {sps:,.0f} env steps/s", flush=True)

  agent = make_agent(config, envs.make(FLAGS.env))
  seeds = results["seeds"] = {}
  for n in map(int, FLAGS.seeds):
    compile_s, run_s, sps = train_rate(agent, n)
    seeds[n] = {"run_seconds": run_s, "compile_seconds": compile_s, "train_sps": sps}
    print(f"seeds={n}: {run_s:.1f}s run, {compile_s:.1f}s compile", flush=True)
  base = seeds[min(seeds)]["run_seconds"]
  for n, s in seeds.items():
    s["over_min_seeds"] = s["run_seconds"] / base
    rows.append((f"{n} seeds vmapped: run seconds (x {min(seeds)} seed)",
                 f"{s['run_seconds']:.1f} ({s['over_min_seeds']:.2f}x)"))
  rows.append((f"compile of jit(vmap(train)), {min(seeds)} seed",
               f"{seeds[min(seeds)]['compile_seconds']:.1f} s"))

  if FLAGS.brax_python and FLAGS.agent in ("ppo", "sac"):
    cmd = [FLAGS.brax_python, os.path.join(os.path.dirname(__file__), "brax_reference.py"),
           f"--agent={FLAGS.agent}", f"--env={FLAGS.env.split('/', 1)[1]}",
           f"--total_steps={FLAGS.total_steps}", *brax_args(config)]
    ref = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True)
                     .stdout.strip().splitlines()[-1])
    results["brax"] = ref
    rows.append((f"Brax {FLAGS.agent} env steps/s (jax {ref['jax']}, cached auto-reset)",
                 f"{ref['steps_per_second']:,.0f}"))
    for mode, r in results["modes"].items():
      r["ours_over_brax"] = r["train_sps"] / ref["steps_per_second"]
      rows.append((f"ours / Brax ({mode})", f"{r['ours_over_brax']:.2f}x"))

  print(f"\n{FLAGS.agent} on {FLAGS.env}; {jax.device_count()} {jax.devices()[0].device_kind} "
        f"device(s); jax {jax.__version__}\n\n| measure | value |\n|---|---|")
  for k, v in rows:
    print(f"| {k} | {v} |")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
