"""The loop off-policy agents share: act, store in replay, take gradient steps.

An off-policy algorithm supplies a `Learner` (its networks, losses and optimisers);
`make_agent` wraps it into the `Agent` protocol. One `update` runs `num_envs` envs for
`unroll_length` steps with the learner's exploration policy, adds the transitions to
the in-jit replay buffer, and takes utd_ratio · num_envs · unroll_length gradient
steps on uniformly sampled minibatches. `init` prefills the buffer with
`learning_starts` transitions of uniformly random actions in [-1, 1].
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from flax import struct

from algorithms.common import replay
from algorithms.common.agent import Agent
from algorithms.common.rollout import episode_stats, rollout
from algorithms.common.running_stats import RunningStats
from envs import Env, EnvState, batch_reset


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig:
  """Settings of the shared loop; each algorithm's config extends it."""

  num_envs: int = 16
  unroll_length: int = 4
  utd_ratio: float = 1.0
  batch_size: int = 256
  buffer_size: int = 1_000_000
  learning_starts: int = 5_000
  discount: float = 0.99
  reward_scaling: float = 1.0
  normalize_observations: bool = False

  @property
  def grad_steps_per_update(self) -> int:
    """Gradient steps per `update`: utd_ratio · num_envs · unroll_length."""
    return int(round(self.utd_ratio * self.num_envs * self.unroll_length))

  def validate(self) -> None:
    """Raises ValueError on settings that cannot run."""
    for name in ("num_envs", "unroll_length", "batch_size", "buffer_size"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{type(self).__name__}.{name} must be positive, got {getattr(self, name)}")
    if self.learning_starts < 1:
      raise ValueError(f"learning_starts must be >= 1 (the first minibatch samples the "
                       f"prefilled buffer), got {self.learning_starts}")
    if self.batch_size > self.buffer_size:
      raise ValueError(f"batch_size {self.batch_size} exceeds buffer_size {self.buffer_size}")
    steps = self.utd_ratio * self.num_envs * self.unroll_length
    if steps < 1 or abs(steps - round(steps)) > 1e-9:
      raise ValueError(f"utd_ratio * num_envs * unroll_length = {steps} must be a positive "
                       "integer (gradient steps per update)")


@dataclasses.dataclass(frozen=True)
class Learner:
  """What an off-policy algorithm supplies.

  init: key -> learner state (params, optimiser states, counters).
  explore: (learner state, obs [B, d] normalised, key) -> action [B, a] in [-1, 1].
  update: (learner state, batch of replay items with normalised obs, key) ->
    (learner state, metrics dict of scalars); one gradient step.
  policy: learner state -> the policy network's params.
  make_policy, log_prob: over {'policy', 'obs_stats'} (see `algorithms.common.policies`).
  """

  init: Callable[[jax.Array], Any]
  explore: Callable[[Any, jax.Array, jax.Array], jax.Array]
  update: Callable[[Any, dict, jax.Array], tuple[Any, dict]]
  policy: Callable[[Any], Any]
  make_policy: Callable
  log_prob: Optional[Callable]


@struct.dataclass
class OffPolicyState:
  """Learner state, replay buffer, envs [num_envs], observation statistics, key, counter."""

  learner: Any
  buffer: Any
  env_state: EnvState
  obs_stats: RunningStats
  key: jax.Array
  update_step: jax.Array


def make_agent(config: OffPolicyConfig, env: Env, learner: Learner) -> Agent:
  """The shared loop around `learner` as an `Agent` (env must auto-reset)."""
  config.validate()
  buffer = replay.make_buffer(config.buffer_size, config.batch_size)
  prefill_length = -(-config.learning_starts // config.num_envs)

  def normalize(stats, batch):
    if not config.normalize_observations:
      return batch
    return {**batch, "obs": stats.normalize(batch["obs"]),
            "next_obs": stats.normalize(batch["next_obs"])}

  def init(key):
    k_learner, k_env, k_fill, key = jax.random.split(key, 4)
    env_state = batch_reset(env, k_env, config.num_envs)
    buf = buffer.init(replay.example_item(env.observation_size, env.action_size))
    stats = RunningStats.create(env.observation_size)

    def uniform(obs, k):
      return jax.random.uniform(k, (obs.shape[0], env.action_size), minval=-1.0, maxval=1.0), {}

    env_state, tr = rollout(env, env_state, uniform, k_fill, prefill_length)
    buf = buffer.add(buf, replay.items(tr))
    if config.normalize_observations:
      stats = stats.update(tr.obs)
    return OffPolicyState(learner=learner.init(k_learner), buffer=buf, env_state=env_state,
                          obs_stats=stats, key=key, update_step=jnp.zeros((), jnp.int32))

  def grad_step(carry, k):
    lstate, buf, stats = carry
    k_sample, k_update = jax.random.split(k)
    batch = normalize(stats, buffer.sample(buf, k_sample).experience)
    batch = {**batch, "reward": batch["reward"] * config.reward_scaling}
    lstate, metrics = learner.update(lstate, batch, k_update)
    return (lstate, buf, stats), metrics

  def update(state: OffPolicyState):
    key, k_roll, k_learn = jax.random.split(state.key, 3)

    def act(obs, k):
      obs_in = state.obs_stats.normalize(obs) if config.normalize_observations else obs
      return learner.explore(state.learner, obs_in, k), {}

    env_state, tr = rollout(env, state.env_state, act, k_roll, config.unroll_length)
    buf = buffer.add(state.buffer, replay.items(tr))
    stats = state.obs_stats.update(tr.obs) if config.normalize_observations else state.obs_stats
    (lstate, buf, stats), metrics = jax.lax.scan(
        grad_step, (state.learner, buf, stats),
        jax.random.split(k_learn, config.grad_steps_per_update))
    # nanmean: a learner marks steps where a quantity was not computed (TD3's delayed
    # actor) with NaN.
    metrics = {**jax.tree.map(jnp.nanmean, metrics), **episode_stats(tr)}
    return OffPolicyState(learner=lstate, buffer=buf, env_state=env_state, obs_stats=stats,
                          key=key, update_step=state.update_step + 1), metrics

  def policy_params(state: OffPolicyState):
    return {"policy": learner.policy(state.learner), "obs_stats": state.obs_stats}

  return Agent(init=init, update=update, policy_params=policy_params,
               make_policy=learner.make_policy, log_prob=learner.log_prob,
               steps_per_update=config.num_envs * config.unroll_length,
               init_steps=prefill_length * config.num_envs)
