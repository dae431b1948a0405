"""A short vmapped training run scored before and after, shared by the learning tests."""

import jax
import numpy as np

import envs
from algorithms.common.agent import Agent, run_updates


def before_and_after(agent: Agent, env, num_updates: int, num_seeds: int = 2,
                     episodes: int = 8, seed: int = 0):
  """Trains `num_seeds` seeds at once (jit(vmap)) -> (mean deterministic return before
  [seeds], after [seeds], metrics [seeds, num_updates], final state [seeds, ...])."""

  def run(key):
    state = agent.init(key)

    def score(s, k):
      return envs.episode_returns(env, agent.make_policy(agent.policy_params(s), True), k,
                                  episodes)

    before = score(state, jax.random.PRNGKey(9))
    state, metrics = run_updates(agent, state, num_updates)
    return before, score(state, jax.random.PRNGKey(9)), metrics, state

  before, after, metrics, state = jax.jit(jax.vmap(run))(
      jax.random.split(jax.random.PRNGKey(seed), num_seeds))
  return np.asarray(before).mean(1), np.asarray(after).mean(1), metrics, state
