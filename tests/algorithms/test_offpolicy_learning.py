"""Short runs of SAC, TD3 and off-policy MDPO whose evaluation return clearly improves."""

import jax
import numpy as np
import pytest

import envs
from algorithms import mdpo_offpolicy, sac, td3
from algorithms.common.agent import run_updates

SHARED = dict(num_envs=8, unroll_length=8, utd_ratio=0.25, batch_size=128, buffer_size=50_000,
              learning_starts=1_000, hidden=(64, 64))
AGENTS = {
    "sac": lambda: sac.make_agent(sac.SACConfig(**SHARED), ENV),
    "td3": lambda: td3.make_agent(td3.TD3Config(**SHARED), ENV),
    "mdpo_off": lambda: mdpo_offpolicy.make_agent(
        mdpo_offpolicy.MDPOOffConfig(**SHARED, iteration_length=100), ENV),
}
ENV = envs.make("brax/inverted_pendulum", episode_length=200)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_learns_inverted_pendulum(name):
  """Two seeds vmapped: the pole is held clearly longer than by the initial policy."""
  agent = AGENTS[name]()
  num_updates = 12_000 // agent.steps_per_update

  def run(key):
    state = agent.init(key)

    def score(s):
      policy = agent.make_policy(agent.policy_params(s), True)
      return envs.episode_returns(ENV, policy, jax.random.PRNGKey(9), 8)

    before = score(state)
    state, metrics = run_updates(agent, state, num_updates)
    return before, score(state), metrics

  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  before, after, metrics = jax.jit(jax.vmap(run))(keys)
  before, after = float(np.mean(before)), float(np.mean(after))
  # The pole falls after ~30 steps at first. Brax's own SAC (8 envs, UTD 0.5, 64-64)
  # also plateaus near 80-95 by 16k steps here; holding all 200 steps takes ~20k at
  # UTD 1 (the cart must also stay on its rail), too long for a unit test.
  assert before < 40, before
  assert after > 2.2 * before and after > 75, (name, before, after)
  assert all(np.isfinite(np.asarray(v)).all() for k, v in metrics.items()
             if k != "episode_return"), name
