"""Offline agents learn from fixed data on brax/inverted_pendulum (200 steps), 2 seeds each.

Data: 10 episodes of the scripted expert of test_dac.py acting with N(0, 0.3²) noise
(mean return ~150 of 200), and 200 episodes of uniformly random actions (~5.5). 3000
gradient steps each, 64-64 networks (~60 s in all on 2 cores). Base seed 0 gives (per
seed): TD3+BC on expert data [200, 196], on random data [36, 48]; IQL on random data
[30, 29], on expert data [81, 93]; TD3+BC with base seeds 1 and 2: [200, 200], [200, 194]
on expert data, [29, 32], [31, 54] on random data. All four tests pass with base seeds
0, 1 and 2. IQL stays well below the expert on this task (thresholds say so: > 30, not
expert-like); see issue 15's notes.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from algorithms import iql, td3_bc
from algorithms.common.agent import run_updates
from evaluation import data as data_lib
from tests.algorithms.test_dac import EXPERT_GAINS

BASE_SEED = 0


@pytest.fixture(scope="module")
def datasets():
  env = envs.make("brax/inverted_pendulum", episode_length=200)

  def expert(obs, k):
    a = jnp.clip(obs @ EXPERT_GAINS, -1, 1)[:, None]
    return jnp.clip(a + 0.3 * jax.random.normal(k, a.shape), -1, 1)

  def uniform(obs, k):
    return jax.random.uniform(k, obs.shape[:-1] + (1,), minval=-1, maxval=1)

  zero = lambda o, a: jnp.zeros(o.shape[0])
  out = {}
  for name, policy, n, seed in (("expert", expert, 10, 100), ("random", uniform, 200, 200)):
    d = jax.jit(lambda k, p=policy, n=n: data_lib.collect(env, p, zero, k, n, 200))(
        jax.random.PRNGKey(seed + BASE_SEED))
    out[name] = ({k: np.asarray(getattr(d, k)) for k in data_lib.ARRAYS},
                 float(data_lib.discounted_returns(d, 1.0).mean()))
  return env, out


def _train_and_evaluate(module, config, env, data):
  agent = module.make_agent(config, env, data)

  def run(key):
    state, _ = run_updates(agent, agent.init(key), 6, agent.data)
    policy = agent.make_policy(agent.policy_params(state), True)
    return envs.episode_returns(env, policy, jax.random.fold_in(key, 7), 4).mean()

  return np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(BASE_SEED), 2)))


AGENTS = {"td3_bc": (td3_bc, td3_bc.TD3BCConfig(grad_steps=500, hidden=(64, 64))),
          "iql": (iql, iql.IQLConfig(grad_steps=500, hidden=(64, 64), total_steps=3000))}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_beats_the_random_dataset(datasets, name):
  env, data = datasets
  arrays, data_return = data["random"]
  assert data_return < 10
  returns = _train_and_evaluate(*AGENTS[name], env, arrays)
  assert (returns > 2 * data_return + 10).all(), (returns, data_return)


def test_td3_bc_is_expert_like_on_expert_data(datasets):
  env, data = datasets
  arrays, data_return = data["expert"]
  assert data_return > 120
  returns = _train_and_evaluate(*AGENTS["td3_bc"], env, arrays)
  assert (returns > 160).all(), (returns, data_return)


def test_iql_learns_from_expert_data(datasets):
  env, data = datasets
  arrays, data_return = data["expert"]
  returns = _train_and_evaluate(*AGENTS["iql"], env, arrays)
  assert (returns > 30).all(), (returns, data_return)
