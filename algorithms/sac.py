"""Soft Actor-Critic with automatic temperature (Haarnoja et al. 2018, "Soft Actor-Critic
Algorithms and Applications", arXiv:1812.05905).

Twin Q-functions with Polyak-averaged targets, a tanh-squashed Gaussian policy with the
log-det-Jacobian correction (distrax), and the temperature α tuned toward the target
entropy H̄ = −action_size. Per gradient step, on one minibatch and the pre-step
parameters (as the authors' softlearning code):

  J_Q(θ)  = Σ_i E[½ (Q_θi(s, a) − y)²],
            y = r + γ (1 − terminal) (min_i Q_θ̄i(s', a') − α log π(a'|s')),  a' ~ π(·|s')
  J_π(φ)  = E[α log π_φ(ã|s) − min_i Q_θi(s, ã)],  ã = tanh(μ_φ(s) + σ_φ(s) ε)
  J(α)    = E[−log α · (log π_φ(ã|s) + H̄)]   (gradient in log α)

then θ̄ ← τ θ + (1 − τ) θ̄. Exploration samples the stochastic policy; the shared loop
(`algorithms.common.offpolicy`) runs `utd_ratio` gradient steps per env step.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from algorithms.common import distributions, offpolicy, policies
from algorithms.common.networks import MLP, QNet, polyak
from envs import Env


@dataclasses.dataclass(frozen=True)
class SACConfig(offpolicy.OffPolicyConfig):
  """SAC hyperparameters (paper Table 1 values where they apply) plus the shared loop's."""

  actor_learning_rate: float = 3e-4
  critic_learning_rate: float = 3e-4
  alpha_learning_rate: float = 3e-4
  tau: float = 0.005
  init_alpha: float = 1.0
  target_entropy: Optional[float] = None  # None: −action_size
  hidden: Sequence[int] = (256, 256)
  activation: str = "relu"
  min_std: float = 1e-3


@dataclasses.dataclass(frozen=True)
class AILBoostSACConfig(SACConfig):
  """SAC as AILBoost's authors configure it for DM Control (`Cornell-RL/ailboost`,
  cfgs/algo/sac.yaml): 1024-1024 networks, Adam 1e-4, batch 1024, one gradient step per
  2 env steps; shared by AILBoost and its paper's DAC baseline."""

  actor_learning_rate: float = 1e-4
  critic_learning_rate: float = 1e-4
  alpha_learning_rate: float = 1e-4
  hidden: Sequence[int] = (1024, 1024)
  batch_size: int = 1024
  utd_ratio: float = 0.5
  num_envs: int = 8
  unroll_length: int = 25


def networks(config: SACConfig, action_size: int):
  """(policy net: obs -> 2·action_size, twin Q net)."""
  return (MLP(tuple(config.hidden), 2 * action_size, config.activation),
          QNet(tuple(config.hidden), 2, config.activation))


def critic_loss(q_params, target_q_params, actor_params, log_alpha, batch, key,
                config: SACConfig, policy_net, q_net):
  """J_Q: batch {obs, action, reward, discount, next_obs}, [N, ...] -> (loss, aux)."""
  raw = policy_net.apply(actor_params, batch["next_obs"])
  next_action, next_log_prob = distributions.tanh_gaussian(raw, config.min_std) \
      .sample_and_log_prob(seed=key)
  next_q = q_net.apply(target_q_params, batch["next_obs"], next_action).min(-1)
  soft_value = next_q - jnp.exp(log_alpha) * next_log_prob
  target = jax.lax.stop_gradient(
      batch["reward"] + config.discount * batch["discount"] * soft_value)
  q = q_net.apply(q_params, batch["obs"], batch["action"])
  loss = 0.5 * jnp.sum(jnp.mean((q - target[:, None]) ** 2, axis=0))
  return loss, {"critic_loss": loss, "q_mean": q.mean()}


def actor_loss(actor_params, q_params, log_alpha, batch, key, config: SACConfig,
               policy_net, q_net):
  """J_π (reparameterised) -> (loss, aux with the sampled log-probabilities [N])."""
  raw = policy_net.apply(actor_params, batch["obs"])
  action, log_prob = distributions.tanh_gaussian(raw, config.min_std) \
      .sample_and_log_prob(seed=key)
  q = q_net.apply(q_params, batch["obs"], action).min(-1)
  loss = jnp.mean(jnp.exp(log_alpha) * log_prob - q)
  return loss, {"actor_loss": loss, "log_prob": log_prob}


def alpha_loss(log_alpha, log_prob, target_entropy: float):
  """J(α) in log α: −mean(log α · (log π + H̄)), log_prob [N] held fixed."""
  return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))


def make_learner(config: SACConfig, env: Env) -> offpolicy.Learner:
  """SAC's networks, optimisers and one gradient step, for the shared loop."""
  policy_net, q_net = networks(config, env.action_size)
  target_entropy = (-float(env.action_size) if config.target_entropy is None
                    else config.target_entropy)
  actor_opt = optax.adam(config.actor_learning_rate)
  critic_opt = optax.adam(config.critic_learning_rate)
  alpha_opt = optax.adam(config.alpha_learning_rate)

  def init(key):
    k_pi, k_q = jax.random.split(key)
    obs, act = jnp.zeros((1, env.observation_size)), jnp.zeros((1, env.action_size))
    actor, q = policy_net.init(k_pi, obs), q_net.init(k_q, obs, act)
    log_alpha = jnp.log(jnp.float32(config.init_alpha))
    return {"actor": actor, "q": q, "target_q": q, "log_alpha": log_alpha,
            "opt": {"actor": actor_opt.init(actor), "q": critic_opt.init(q),
                    "alpha": alpha_opt.init(log_alpha)}}

  def explore(lstate, obs, key):
    raw = policy_net.apply(lstate["actor"], obs)
    return distributions.tanh_gaussian(raw, config.min_std).sample(seed=key)

  def update(lstate, batch, key):
    k_critic, k_actor = jax.random.split(key)
    log_alpha = lstate["log_alpha"]
    q_grads, c_aux = jax.grad(critic_loss, has_aux=True)(
        lstate["q"], lstate["target_q"], lstate["actor"], log_alpha, batch, k_critic,
        config, policy_net, q_net)
    pi_grads, a_aux = jax.grad(actor_loss, has_aux=True)(
        lstate["actor"], lstate["q"], log_alpha, batch, k_actor, config, policy_net, q_net)
    alpha_grad = jax.grad(alpha_loss)(log_alpha, a_aux["log_prob"], target_entropy)
    opt = lstate["opt"]
    q_upd, opt_q = critic_opt.update(q_grads, opt["q"])
    pi_upd, opt_pi = actor_opt.update(pi_grads, opt["actor"])
    alpha_upd, opt_alpha = alpha_opt.update(alpha_grad, opt["alpha"])
    q = optax.apply_updates(lstate["q"], q_upd)
    new = {"actor": optax.apply_updates(lstate["actor"], pi_upd), "q": q,
           "target_q": polyak(lstate["target_q"], q, config.tau),
           "log_alpha": optax.apply_updates(log_alpha, alpha_upd),
           "opt": {"actor": opt_pi, "q": opt_q, "alpha": opt_alpha}}
    metrics = {"critic_loss": c_aux["critic_loss"], "actor_loss": a_aux["actor_loss"],
               "q_mean": c_aux["q_mean"], "alpha": jnp.exp(log_alpha),
               "entropy": -a_aux["log_prob"].mean()}
    return new, metrics

  make_policy, log_prob = policies.tanh_gaussian_fns(policy_net, config.min_std)
  return offpolicy.Learner(init=init, explore=explore, update=update,
                           policy=lambda lstate: lstate["actor"],
                           make_policy=make_policy, log_prob=log_prob)


def make_agent(config: SACConfig, env: Env):
  """SAC as an `Agent` over `env` (which must auto-reset)."""
  return offpolicy.make_agent(config, env, make_learner(config, env))
