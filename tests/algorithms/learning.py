"""A short vmapped training run scored before and after, shared by the learning tests.

Learning tests draw their seeds from `base_seed()`: `OFFPOLICY_LAB_TEST_SEED=1 pytest
tests/algorithms` re-runs every learning test on other seeds. XLA's CPU code differs
between processors, so a fixed seed does not give the same numbers on every machine;
each test's threshold is set well inside what base seeds 0, 1 and 2 reach (the margins
are noted in each test). `OFFPOLICY_LAB_TEST_LOG=FILE` appends every run's returns to
FILE: `bash tests/learning_seeds.sh` runs the learning tests on base seeds 0, 1, 2.
"""

import os

import jax
import numpy as np

import envs
from algorithms.common.agent import Agent, run_updates
from tests.xla_options import OPTIMISED


def base_seed() -> int:
  """The base PRNG seed of the learning tests ($OFFPOLICY_LAB_TEST_SEED, default 0)."""
  return int(os.environ.get("OFFPOLICY_LAB_TEST_SEED", "0"))


def before_and_after(agent: Agent, env, num_updates: int, num_seeds: int = 2,
                     episodes: int = 8, seed: int | None = None):
  """Trains `num_seeds` seeds at once (jit(vmap)) -> (mean deterministic return before
  [seeds], after [seeds], metrics [seeds, num_updates], final state [seeds, ...]).
  `seed` defaults to `base_seed()`."""
  seed = base_seed() if seed is None else seed

  def run(key):
    state = agent.init(key)

    def score(s, k):
      return envs.episode_returns(env, agent.make_policy(agent.policy_params(s), True), k,
                                  episodes)

    before = score(state, jax.random.PRNGKey(9))
    state, metrics = run_updates(agent, state, num_updates)
    return before, score(state, jax.random.PRNGKey(9)), metrics, state

  # XLA's own optimisation (tests/xla_options.py): these runs are long once compiled
  before, after, metrics, state = jax.jit(jax.vmap(run), compiler_options=OPTIMISED)(
      jax.random.split(jax.random.PRNGKey(seed), num_seeds))
  before, after = np.asarray(before).mean(1), np.asarray(after).mean(1)
  line = (f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]} base seed {seed}: "
          f"before {np.round(before, 1).tolist()} after {np.round(after, 1).tolist()}")
  print(line)
  if os.environ.get("OFFPOLICY_LAB_TEST_LOG"):                 # the seed sweep's record
    with open(os.environ["OFFPOLICY_LAB_TEST_LOG"], "a") as f:
      f.write(line + "\n")
  return before, after, metrics, state
