r"""dmc/ (MJX) returns with Playground's physics options swapped back to dm_control's, one at a time.

    python -m benchmarks.dmc_physics_ablation --tasks=cartpole_swingup,cheetah_run --episodes=100

Playground's DM Control ports edit each task's MuJoCo `<option>` (fewer solver
iterations, Euler instead of RK4, implicit joint damping `eulerdamp` disabled, contact
caps). For each task this runs the fixed linear policy of `envs.dmc_compare`
(tanh(0.3 · obs @ G), G ~ N(0, 1) from PRNGKey(0)) for --episodes episodes on dmc/ as
shipped (`fidelity="playground"`), then with the options restored cumulatively (the
patched MuJoCo model is put back into MJX: `mjx.put_model`), and on dmc_native/
(dm_control), and prints a markdown
table of means ± SE. An experiment for issue 13: which option causes which gap.
"""

import time

import jax
import mujoco
import numpy as np
from absl import app, flags, logging
from mujoco import mjx

import envs
from envs.dmc_compare import linear_policy

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["cartpole_swingup", "cheetah_run"], "DMC tasks (domain_task).")
flags.DEFINE_integer("episodes", 100, "Episodes per variant and backend.")

_EULERDAMP = int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
_RK4 = int(mujoco.mjtIntegrator.mjINT_RK4)
# One option a step, cumulative: name -> function editing the MuJoCo model in place.
_STEPS = {
    "solver iterations 100/50 (dm_control's default)": lambda m: (
        setattr(m.opt, "iterations", 100), setattr(m.opt, "ls_iterations", 50)),
    "eulerdamp on": lambda m: setattr(m.opt, "disableflags", m.opt.disableflags & ~_EULERDAMP),
    "RK4 integrator": lambda m: setattr(m.opt, "integrator", _RK4),
    "no contact caps": lambda m: m.numeric_data.__setitem__(slice(None), -1),
}
# Which steps apply, per task (dm_control's XML: RK4 for cartpole and acrobot only).
_TASK_STEPS = {
    "cartpole_swingup": ["solver iterations 100/50 (dm_control's default)", "eulerdamp on",
                         "RK4 integrator"],
    "cheetah_run": ["eulerdamp on", "solver iterations 100/50 (dm_control's default)",
                    "no contact caps"],
}


def _returns(env, policy, key, n):
  return np.asarray(jax.jit(lambda k: envs.episode_returns(env, policy, k, n))(key))


def _row(label, r, seconds=None):
  n = len(r)
  extra = "" if seconds is None else f" | {seconds:.0f}"
  print(f"| {label} | {r.mean():.2f} ± {r.std(ddof=1) / np.sqrt(n):.2f}{extra} |", flush=True)


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)
  n = FLAGS.episodes
  for task in FLAGS.tasks:
    if task not in _TASK_STEPS:
      raise SystemExit(f"error: no ablation steps for {task!r}; known: {', '.join(_TASK_STEPS)}")
    base = envs.make(f"dmc/{task}", fidelity="playground")
    policy = linear_policy(base.observation_size, base.action_size)
    print(f"\n{task}, fixed linear policy, {n} episodes\n| dmc/ physics | return ± SE | seconds |\n|---|---|---|")
    applied = []
    for step in [None] + _TASK_STEPS[task]:
      env = envs.make(f"dmc/{task}", fidelity="playground")
      if step is not None:
        applied.append(step)
      pg = env.unwrapped.backend_env
      for name in applied:
        _STEPS[name](pg._mj_model)  # pylint: disable=protected-access
      pg._mjx_model = mjx.put_model(pg._mj_model, impl="jax")  # pylint: disable=protected-access
      t = time.time()
      r = _returns(env, policy, jax.random.PRNGKey(1), n)
      _row("as shipped" if not applied else " + ".join(applied), r, time.time() - t)
    native = envs.native_episode_returns(envs.make(f"dmc_native/{task}"), jax.jit(policy),
                                         jax.random.PRNGKey(2), n)
    _row("dmc_native/ (dm_control)", native)


if __name__ == "__main__":
  app.run(main)
