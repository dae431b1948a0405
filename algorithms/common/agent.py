"""The agent protocol every algorithm implements, and the pieces built on it.

An agent is a bundle of pure functions over an explicit state:

    agent = ppo.make_agent(ppo.PPOConfig(), env)
    state = agent.init(key)                  # TrainState pytree
    state, metrics = agent.update(state)     # one iteration: collect + learn
    policy = agent.make_policy(agent.policy_params(state), deterministic=True)
    action = policy(obs, key)                # obs [..., d] -> action [..., a]

`make_train(agent, num_updates)` turns it into one `train(key)` that vmaps over seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax


Params = Any
Policy = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Agent:
  """What the training binary and the evaluation package need from an algorithm.

  Attributes:
    init: key -> state.
    update: state -> (state, metrics dict of scalars); one training iteration.
    policy_params: state -> params that `make_policy` / `log_prob` take (includes
      observation-normalisation statistics).
    make_policy: (params, deterministic) -> policy(obs [..., d], key) -> action [..., a].
    log_prob: (params, obs [..., d], action [..., a]) -> [...], or None for
      deterministic-only policies.
    steps_per_update: env steps (summed over parallel envs) consumed by one `update`
      (for offline agents: gradient steps).
    init_steps: env steps consumed by `init` (e.g. replay prefill), 0 for most agents.
    data: None, or the arrays an offline agent learns from; then `update` is
      (state, data) -> (state, metrics), and callers pass `data` as an argument of the
      jitted function (unbatched under vmap), never as a closure constant.
  """

  init: Callable[[jax.Array], Any]
  update: Callable[[Any], tuple[Any, dict]]
  policy_params: Callable[[Any], Params]
  make_policy: Callable[[Params, bool], Policy]
  log_prob: Optional[Callable[[Params, jax.Array, jax.Array], jax.Array]]
  steps_per_update: int
  init_steps: int = 0
  data: Any = None

  def step(self, state: Any, data: Any = None) -> tuple[Any, dict]:
    """One `update`, handing `data` to agents that learn from a dataset."""
    return self.update(state) if self.data is None else self.update(state, data)


def run_updates(agent: Agent, state: Any, num_updates: int, data: Any = None) -> tuple[Any, dict]:
  """`num_updates` iterations in one `lax.scan` -> (state, metrics stacked [num_updates])."""
  return jax.lax.scan(lambda s, _: agent.step(s, data), state, None, length=num_updates)


def make_train(agent: Agent, num_updates: int) -> Callable[[jax.Array], tuple[Any, dict]]:
  """The whole run as one pure function: key -> (final state, metrics [num_updates])."""

  def train(key):
    return run_updates(agent, agent.init(key), num_updates, agent.data)

  return train
