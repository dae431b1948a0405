"""Offline agents learn from fixed data on brax/inverted_pendulum (200 steps), 2 seeds each.

Data: 10 episodes of the scripted expert of test_dac.py acting with N(0, 0.3²) noise
(mean return ~150 of 200), and 200 episodes of uniformly random actions (~5.5). 3000
gradient steps each, 64-64 networks (~15 s per agent and dataset on 2 cores). Returns per
seed with base seeds 0 / 1 / 2 (the data made under conftest.py's fast XLA flags):

- TD3+BC, expert data: [200, 198] / [200, 200] / [200, 187] (2026-11-28); random data: [37, 43] /
  [30, 30] / [31, 53].
- IQL, random data: [29, 26] / [60, 39] / [52, 42]; expert data: [77, 93] / [60, 86] /
  [200, 200].
- Behaviour cloning (IQL at β = 0), expert data: [200, 200] / [200, 200] / [200, 200].
- PRDC, random data: [39, 28] / [31, 21] / [23, 26]: its target is the nearest dataset
  point's action, a random action here, so it stays nearer the data than TD3+BC.
- A2PR, random data: [94, 79] / [31, 30] / [52, 26].

IQL stays below the expert on this dataset with base seeds 0 and 1, and the test says so
(> 30, not expert-like).
The cause, by ablation (base seed 0): its advantage weights min(exp(3 (Q − V)), 100)
concentrate on few samples, because the authors' reward normalisation (× 1000 / return
range) multiplies this short, narrow dataset's rewards by 8.9 where D4RL's 1000-step
datasets get about 1. The weights' effective sample size ends at 6–9% of the batch. With
β = 0 (Gaussian behaviour cloning, same networks and steps) IQL reaches [200, 200]; without
the reward scaling the effective sample size stays at 75–95% and IQL reaches [102, 200].
PRDC and A2PR are checked on random data only: on this 2000-transition expert dataset
their looser constraints let the actor exploit the critic (issue 15's notes), which the
benchmark examines on full-size datasets.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from algorithms import a2pr, iql, prdc, td3_bc
from algorithms.common.agent import run_updates
from evaluation import data as data_lib
from tests.algorithms.learning import base_seed
from tests.algorithms.test_dac import EXPERT_GAINS
from tests.xla_options import OPTIMISED

BASE_SEED = base_seed()   # $OFFPOLICY_LAB_TEST_SEED, 0 by default (tests/learning_seeds.sh)


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

  return np.asarray(jax.jit(jax.vmap(run), compiler_options=OPTIMISED)(
      jax.random.split(jax.random.PRNGKey(BASE_SEED), 2)))


AGENTS = {"td3_bc": (td3_bc, td3_bc.TD3BCConfig(grad_steps=500, hidden=(64, 64))),
          "iql": (iql, iql.IQLConfig(grad_steps=500, hidden=(64, 64), total_steps=3000)),
          "prdc": (prdc, prdc.PRDCConfig(grad_steps=500, hidden=(64, 64))),
          "a2pr": (a2pr, a2pr.A2PRConfig(grad_steps=500, hidden=(64, 64), critic_hidden=(64, 64),
                                         vae_hidden=(64, 64)))}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_beats_the_random_dataset(datasets, name):
  env, data = datasets
  arrays, data_return = data["random"]
  assert data_return < 10
  returns = _train_and_evaluate(*AGENTS[name], env, arrays)
  margin = 4 if name == "prdc" else 10   # see the module doc
  assert (returns > 2 * data_return + margin).all(), (returns, data_return)


@pytest.fixture(scope="module")
def expert_runs(datasets):
  """Returns per seed of TD3+BC and of behaviour cloning trained on the expert data."""
  env, data = datasets
  arrays, data_return = data["expert"]
  assert data_return > 120
  bc = dataclasses.replace(AGENTS["iql"][1], temperature=0.0)   # every AWR weight exp(0) = 1
  returns = {"td3_bc": _train_and_evaluate(*AGENTS["td3_bc"], env, arrays),
             "bc": _train_and_evaluate(iql, bc, env, arrays)}
  print(f"base seed {BASE_SEED}: data {data_return:.1f}",
        {k: v.round(1) for k, v in returns.items()})
  return returns, data_return


def test_td3_bc_is_expert_like_on_expert_data(expert_runs):
  returns, data_return = expert_runs
  assert (returns["td3_bc"] > 160).all(), (returns, data_return)


def test_td3_bc_stays_comparable_with_cloning_on_expert_data(expert_runs):
  """Issue 15's noise-free baseline: IQL at β = 0 is Gaussian behaviour cloning, and acting
  with its mean action it drops the data's N(0, 0.3²) noise, so it beats the data's return
  (~150). TD3+BC, a critic plus a (squared-error) cloning term, must stay level with it."""
  returns, data_return = expert_runs
  assert (returns["bc"] > 160).all(), (returns, data_return)
  assert returns["td3_bc"].mean() > returns["bc"].mean() - 25, returns


def test_iql_learns_from_expert_data(datasets):
  env, data = datasets
  arrays, data_return = data["expert"]
  returns = _train_and_evaluate(*AGENTS["iql"], env, arrays)
  assert (returns > 30).all(), (returns, data_return)
