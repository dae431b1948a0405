r"""dmc/ (MJX via Playground) against dmc_native/ (dm_control): observations and returns.

    python -m benchmarks.dmc_parity --tasks=cartpole_balance --episodes=50 \
        --workdir=runs/ppo_cartpole      # a run of experiments.train on dmc/<task>
    python -m benchmarks.dmc_parity --obs_table   # every dmc/ task, first-step check

Returns: the same policy (seed 0 of --workdir's last checkpoint, deterministic; or, with
no workdir, a fixed linear feedback policy) is run for --episodes episodes on each
backend from their own random initial states; prints the means, standard errors and
the gap. --obs_table copies the native initial physics state (qpos, qvel) into MJX,
applies one zero action on both and reports the largest observation difference and
the indices that differ by more than 1e-2.
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

import envs

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["cartpole_balance"], "DMC tasks (domain_task) for the returns check.")
flags.DEFINE_integer("episodes", 50, "Episodes per backend.")
flags.DEFINE_string("workdir", None, "experiments.train workdir whose policy to run.")
flags.DEFINE_bool("obs_table", False, "Also check first-step observations on every dmc/ task.")


def _policy(task, env):
  if FLAGS.workdir is None:
    gain = jax.random.normal(jax.random.PRNGKey(0), (env.observation_size, env.action_size))
    return lambda obs, key: jnp.tanh(0.3 * obs @ gain), "fixed linear feedback"
  from experiments import runner  # pylint: disable=import-outside-toplevel
  state = runner.load_state(FLAGS.workdir)
  _, run_env, agent = runner.build(runner.RunSpec(**runner.read_spec(FLAGS.workdir)))
  assert run_env.name == f"dmc/{task}", f"{FLAGS.workdir} trained {run_env.name}"
  params = agent.policy_params(jax.tree.map(lambda x: x[0], state))
  return agent.make_policy(params, True), f"PPO seed 0 of {FLAGS.workdir}"


def returns_gap(task):
  mjx, native = envs.make(f"dmc/{task}"), envs.make(f"dmc_native/{task}")
  policy, what = _policy(task, mjx)
  n = FLAGS.episodes
  r_mjx = np.asarray(jax.jit(lambda k: envs.episode_returns(mjx, policy, k, n))(jax.random.PRNGKey(1)))
  r_nat = envs.native_episode_returns(native, jax.jit(policy), jax.random.PRNGKey(2), n)
  se = np.sqrt(r_mjx.var(ddof=1) / n + r_nat.var(ddof=1) / n)
  gap = r_mjx.mean() - r_nat.mean()
  print(f"| {task} | {what} | {n} | {r_mjx.mean():.1f} ± {r_mjx.std(ddof=1) / np.sqrt(n):.1f} "
        f"| {r_nat.mean():.1f} ± {r_nat.std(ddof=1) / np.sqrt(n):.1f} | {gap:+.1f} "
        f"({100 * gap / max(abs(r_nat.mean()), 1e-9):+.1f}%, {abs(gap) / se:.1f} SE) |", flush=True)


def obs_row(task):
  native = envs.make(f"dmc_native/{task}")
  base = envs.make(f"dmc/{task}").unwrapped
  ns, ms = native.reset(jax.random.PRNGKey(0)), jax.jit(base.reset)(jax.random.PRNGKey(0))
  data = ms.sim.data.replace(qpos=jnp.asarray(native.physics.data.qpos, jnp.float32),
                             qvel=jnp.asarray(native.physics.data.qvel, jnp.float32))
  ms = ms.replace(sim=ms.sim.replace(data=data))
  a = np.zeros(native.action_size, np.float32)
  ns, ms = native.step(ns, a), jax.jit(base.step)(ms, jnp.asarray(a))
  diff = np.abs(ns.obs - np.asarray(ms.obs))
  bad = np.flatnonzero(diff > 1e-2)
  print(f"| {task} | {native.observation_size} | {diff.max():.4f} | "
        f"{', '.join(map(str, bad)) if bad.size else 'none'} |", flush=True)


def main(_):
  logging.set_verbosity(logging.ERROR)
  print("| task | policy | episodes | dmc/ return ± SE | dmc_native/ return ± SE | gap |")
  print("|---|---|---|---|---|---|")
  for task in FLAGS.tasks:
    returns_gap(task)
  if FLAGS.obs_table:
    print("\n| task | obs size | max first-step obs diff | indices > 1e-2 |\n|---|---|---|---|")
    for name in envs.names("dmc"):
      obs_row(name.split("/", 1)[1])


if __name__ == "__main__":
  app.run(main)
