"""Proximal Policy Optimization for continuous actions (Schulman et al. 2017).

The policy is a tanh-squashed Gaussian whose mean and scale come from one MLP
(softplus scale + `min_std`, as Brax; `state_dependent_std=False` learns one scale
vector instead, as CleanRL); the value function is a separate MLP. One
`update` collects `unroll_length` steps from `num_envs` auto-resetting envs,
updates the observation statistics, optionally normalises the rewards by the running
std of the discounted return (`normalize_rewards`, `algorithms.common.reward_norm`, as
VecNormalize; off by default), computes GAE(λ) (`algorithms.common.gae`) with the
pre-update value function, and takes `num_epochs` passes of `num_minibatches`
Adam steps on the clipped surrogate (eq. 7 of the paper) plus value loss and entropy
bonus (eq. 9), with global-norm gradient clipping; `value_clip` > 0 clips the value
loss as baselines' PPO2 does (`algorithms.common.value_loss`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from algorithms.common import distributions, policies
from algorithms.common.agent import Agent, make_train as _make_train
from algorithms.common.gae import gae
from algorithms.common.minibatches import shuffled_minibatches
from algorithms.common import reward_norm
from algorithms.common.networks import MLP, MeanAndFreeScale, ValueNet
from algorithms.common.reward_norm import RewardNormState
from algorithms.common.rollout import episode_stats, rollout
from algorithms.common.running_stats import RunningStats
from algorithms.common.value_loss import clipped_value_loss
from envs import Env, EnvState, batch_reset


@dataclasses.dataclass(frozen=True)
class PPOConfig:
  """PPO hyperparameters. One update uses num_envs * unroll_length env steps."""

  num_envs: int = 64
  unroll_length: int = 32
  num_minibatches: int = 8
  num_epochs: int = 4
  learning_rate: float = 1e-3
  discount: float = 0.99
  gae_lambda: float = 0.95
  clip_eps: float = 0.3
  value_coef: float = 0.5
  value_clip: float = 0.0
  entropy_coef: float = 1e-2
  max_grad_norm: float = 1.0
  adam_eps: float = 1e-8
  reward_scaling: float = 1.0
  normalize_rewards: bool = False
  reward_clip: float = 10.0
  normalize_observations: bool = True
  normalize_advantage: bool = True
  policy_hidden: Sequence[int] = (64, 64)
  value_hidden: Sequence[int] = (64, 64)
  activation: str = "swish"
  min_std: float = 1e-3
  state_dependent_std: bool = True   # False: one learned scale vector (CleanRL, PROPS authors)

  def validate(self) -> None:
    """Raises ValueError on settings that cannot run."""
    batch = self.num_envs * self.unroll_length
    for name in ("num_envs", "unroll_length", "num_minibatches", "num_epochs"):
      if getattr(self, name) <= 0:
        raise ValueError(f"PPOConfig.{name} must be positive, got {getattr(self, name)}")
    if self.reward_clip <= 0:
      raise ValueError(f"PPOConfig.reward_clip must be positive, got {self.reward_clip}")
    if batch % self.num_minibatches:
      raise ValueError(f"num_envs*unroll_length={batch} is not divisible by "
                       f"num_minibatches={self.num_minibatches}")


@struct.dataclass
class PPOState:
  """params {'policy', 'value'}, Adam state, observation statistics, reward normalisation
  state, the envs [num_envs], the PRNG key and the number of updates done."""

  params: dict
  opt_state: Any
  obs_stats: RunningStats
  reward_norm: RewardNormState
  env_state: EnvState
  key: jax.Array
  update_step: jax.Array


def networks(config: PPOConfig, env: Env) -> tuple[nn.Module, ValueNet]:
  """The policy net (obs -> 2*action_size Gaussian parameters) and the value net.

  With `state_dependent_std` the MLP emits means and scales (Brax); without it, means
  only, next to one learned scale vector (`networks.MeanAndFreeScale`).
  """
  if config.state_dependent_std:
    policy = MLP(tuple(config.policy_hidden), 2 * env.action_size, config.activation,
                 final_scale=0.01)
  else:
    policy = MeanAndFreeScale(tuple(config.policy_hidden), env.action_size, config.activation,
                              final_scale=0.01)
  return policy, ValueNet(tuple(config.value_hidden), config.activation)


def loss(params: dict, batch: dict, key: jax.Array, config: PPOConfig,
         policy_net: nn.Module, value_net: ValueNet) -> tuple[jax.Array, dict]:
  """PPO loss on a minibatch (Schulman et al. 2017, eqs. 7 and 9).

    r = exp(log N(u | θ) − log N(u | θ_old))   (the tanh Jacobian cancels)
    L_clip = −mean(min(r Â, clip(r, 1 − ε, 1 + ε) Â))
    L_V = mean((V(s) − R)²) / 2    (clipped around V_old if value_clip > 0)
    L = L_clip + value_coef · L_V − entropy_coef · mean(H)

  Â is standardised over the minibatch when `normalize_advantage`; H is the squashed
  policy's entropy, estimated with one sample per state from `key`.

  Args:
    params: {'policy', 'value'} flax params.
    batch: obs [N, d] (normalised), u [N, a] pre-tanh actions, log_prob [N] under the
      behaviour policy, advantage [N], target [N] (value targets R), value [N] (V_old,
      used only when value_clip > 0), and optionally
      mask [N] (bool): every mean (and the advantage standardisation) is over mask only.
  Returns: (L, {'policy_loss', 'value_loss', 'entropy', 'approx_kl', 'clip_fraction'}).
  """
  if "mask" in batch:
    m = batch["mask"].astype(jnp.float32)
    mean = lambda x: jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)
  else:
    mean = jnp.mean
  raw = policy_net.apply(params["policy"], batch["obs"])
  log_prob = distributions.gaussian(raw, config.min_std).log_prob(batch["u"])
  log_ratio = log_prob - batch["log_prob"]
  ratio = jnp.exp(log_ratio)
  adv = batch["advantage"]
  if config.normalize_advantage:
    centred = adv - mean(adv)
    adv = centred / (jnp.sqrt(mean(centred**2)) + 1e-8)
  surrogate = jnp.minimum(ratio * adv,
                          jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv)
  policy_loss = -mean(surrogate)
  old_values = batch["value"] if config.value_clip > 0 else None
  value_loss = 0.5 * mean(clipped_value_loss(value_net.apply(params["value"], batch["obs"]),
                                             old_values, batch["target"], config.value_clip))
  entropy = mean(distributions.entropy(raw, key, config.min_std))
  total = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
  return total, {
      "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
      "approx_kl": mean((ratio - 1.0) - log_ratio),
      "clip_fraction": mean((jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32)),
  }


def collect(config: PPOConfig, env: Env, policy_net: nn.Module, value_net: ValueNet, params: dict,
            obs_stats: RunningStats, rew_norm: RewardNormState, env_state: EnvState,
            key: jax.Array):
  """One on-policy batch: `unroll_length` steps of `num_envs` envs with params['policy'].

  Updates the observation statistics first (when `normalize_observations`), normalises
  the rewards (when `normalize_rewards`; `reward_scaling` multiplies them either way),
  then computes GAE(λ) with params['value']. Returns (env_state, obs_stats, rew_norm,
  batch, rollout) where batch holds, flattened to [B = num_envs * unroll_length]: obs (normalised),
  u (pre-tanh actions), log_prob (of u when acting), value (V before the update),
  advantage, target.
  """

  def act(obs, k):
    raw = policy_net.apply(params["policy"], obs_stats.normalize(obs))
    dist = distributions.gaussian(raw, config.min_std)
    u = dist.sample(seed=k)
    return jnp.tanh(u), {"u": u, "log_prob": dist.log_prob(u)}

  env_state, tr = rollout(env, env_state, act, key, config.unroll_length)
  if config.normalize_observations:
    obs_stats = obs_stats.update(tr.obs)
  obs = obs_stats.normalize(tr.obs)
  values = value_net.apply(params["value"], obs)
  next_values = value_net.apply(params["value"], obs_stats.normalize(tr.next_obs))
  rewards = tr.reward
  if config.normalize_rewards:
    rew_norm, rewards = reward_norm.normalize(rew_norm, rewards, tr.terminated | tr.truncated,
                                              config.discount, config.reward_clip)
  advantage, target = gae(rewards * config.reward_scaling, values, next_values,
                          tr.terminated, tr.terminated | tr.truncated,
                          config.discount, config.gae_lambda)
  batch = {"obs": obs, "u": tr.extras["u"], "log_prob": tr.extras["log_prob"],
           "value": values, "advantage": advantage, "target": target}
  size = config.num_envs * config.unroll_length
  batch = jax.tree.map(lambda x: x.reshape((size,) + x.shape[2:]), batch)
  return env_state, obs_stats, rew_norm, batch, tr


def make_agent(config: PPOConfig, env: Env) -> Agent:
  """PPO as an `Agent` over `env` (which must auto-reset)."""
  config.validate()
  policy_net, value_net = networks(config, env)
  optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                          optax.adam(config.learning_rate, eps=config.adam_eps))
  make_policy, log_prob = policies.tanh_gaussian_fns(policy_net, config.min_std)
  batch_size = config.num_envs * config.unroll_length

  def init(key):
    k_pi, k_v, k_env, key = jax.random.split(key, 4)
    dummy = jnp.zeros((1, env.observation_size))
    params = {"policy": policy_net.init(k_pi, dummy), "value": value_net.init(k_v, dummy)}
    return PPOState(params=params, opt_state=optimizer.init(params),
                    obs_stats=RunningStats.create(env.observation_size),
                    reward_norm=RewardNormState.create(config.num_envs),
                    env_state=batch_reset(env, k_env, config.num_envs), key=key,
                    update_step=jnp.zeros((), jnp.int32))

  def sgd_step(params_opt, xs):
    params, opt_state = params_opt
    mb, key = xs
    grads, aux = jax.grad(loss, has_aux=True)(params, mb, key, config, policy_net, value_net)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), aux

  def epoch(carry, key):
    params, opt_state, batch = carry
    k_perm, k_ent = jax.random.split(key)
    mbs = shuffled_minibatches(k_perm, batch, config.num_minibatches)
    (params, opt_state), aux = jax.lax.scan(
        sgd_step, (params, opt_state), (mbs, jax.random.split(k_ent, config.num_minibatches)))
    return (params, opt_state, batch), aux

  def update(state: PPOState):
    key, k_roll, k_learn = jax.random.split(state.key, 3)
    env_state, obs_stats, rew_norm, batch, tr = collect(
        config, env, policy_net, value_net, state.params, state.obs_stats, state.reward_norm,
        state.env_state, k_roll)
    (params, opt_state, _), aux = jax.lax.scan(
        epoch, (state.params, state.opt_state, batch),
        jax.random.split(k_learn, config.num_epochs))
    metrics = {**jax.tree.map(jnp.mean, aux), **episode_stats(tr)}
    new_state = PPOState(params=params, opt_state=opt_state, obs_stats=obs_stats,
                         reward_norm=rew_norm, env_state=env_state, key=key,
                         update_step=state.update_step + 1)
    return new_state, metrics

  def policy_params(state: PPOState):
    return {"policy": state.params["policy"], "obs_stats": state.obs_stats}

  return Agent(init=init, update=update, policy_params=policy_params,
               make_policy=make_policy, log_prob=log_prob, steps_per_update=batch_size)


def make_train(config: PPOConfig, env: Env, total_steps: int):
  """key -> (PPOState, metrics [num_updates]) for ⌈total_steps / batch⌉ updates."""
  agent = make_agent(config, env)
  return _make_train(agent, -(-total_steps // agent.steps_per_update))
