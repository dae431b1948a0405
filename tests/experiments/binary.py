"""Running the experiment binaries from tests, as a user would, sharing the test run's
compilation cache so that repeated invocations of one program compile it once."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A tiny PPO run: 2 seeds, 4 chunks, a few seconds once compiled.
TINY = dict(
    agent="ppo", env="brax/inverted_pendulum", num_seeds=2, total_steps=64 * 12, seed=3,
    num_evals=4, eval_episodes=2, env_args=("episode_length=50",),
    overrides=("num_envs=8", "unroll_length=8", "num_minibatches=2", "num_epochs=2",
               "policy_hidden=(16,)", "value_hidden=(16,)",
               # reward statistics are agent state: resume must carry them exactly
               "normalize_rewards=True", "value_clip=0.2"))


def args(spec: dict) -> list[str]:
  """The train binary's flags for a RunSpec-like dict."""
  out = [f"--{k}={v}" for k, v in spec.items() if k not in ("overrides", "env_args")]
  return (out + [f"--override={o}" for o in spec["overrides"]]
          + [f"--env_arg={o}" for o in spec["env_args"]])


def environ(**extra) -> dict:
  """os.environ (with conftest.py's XLA_FLAGS) plus the test run's compilation cache and
  `extra`."""
  env = dict(os.environ, **extra)
  cache = os.environ.get("OFFPOLICY_LAB_TEST_JIT_CACHE")
  if cache:
    env.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  return env


def command(module: str, *flags) -> list[str]:
  """`python -m module flags...`; module "-c" takes the code as its first flag."""
  return [sys.executable, "-c" if module == "-c" else "-m", *([] if module == "-c" else [module]),
          *flags]


def run(module: str, *flags, env=None, **kwargs) -> subprocess.CompletedProcess:
  """Runs `python -m module flags...` in the repository root; captures text output."""
  return subprocess.run(command(module, *flags), cwd=ROOT, capture_output=True, text=True,
                        env=env or environ(), timeout=600, **kwargs)
