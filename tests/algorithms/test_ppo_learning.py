"""A short PPO run whose evaluation return clearly improves (2 seeds, vmapped)."""

import jax
import numpy as np

import envs
from algorithms import ppo
from algorithms.common.agent import run_updates

CONFIG = ppo.PPOConfig(num_envs=32, unroll_length=8, num_minibatches=4, num_epochs=8,
                       policy_hidden=(32, 32), value_hidden=(32, 32))


def test_ppo_learns_inverted_pendulum():
  env = envs.make("brax/inverted_pendulum", episode_length=200)
  agent = ppo.make_agent(CONFIG, env)
  num_updates = 60_000 // agent.steps_per_update

  def run(key):
    state = agent.init(key)

    def score(s, k):
      return envs.episode_returns(env, agent.make_policy(agent.policy_params(s), True), k, 8)

    before = score(state, jax.random.PRNGKey(9))
    state, metrics = run_updates(agent, state, num_updates)
    return before, score(state, jax.random.PRNGKey(9)), metrics

  before, after, metrics = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), 2))
  before, after = np.asarray(before).mean(1), np.asarray(after).mean(1)
  # The pole falls in ~25 steps at first; a learned policy holds it for most of 200.
  assert (before < 60).all(), before
  assert (after > 150).all(), after
  assert np.isfinite(np.asarray(metrics["policy_loss"])).all()
