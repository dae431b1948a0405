"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in
Actor-Critic Methods", Algorithm 1).

Deterministic tanh policy μ_φ, twin critics, target networks for both. Per gradient step:

  ã  = clip(μ_φ'(s') + clip(ε, −c, c), −1, 1),   ε ~ N(0, σ²)      (target smoothing, eq. 15)
  y  = r + γ (1 − terminal) min_i Q_θ'i(s', ã)                      (clipped double Q, eq. 10)
  L(θ) = Σ_i E[(Q_θi(s, a) − y)²]

and every `policy_delay` critic steps: φ ← φ + ∇ E[Q_θ1(s, μ_φ(s))] (deterministic policy
gradient through Q1 only), then θ'_i ← τθ_i + (1 − τ)θ'_i and φ' ← τφ + (1 − τ)φ'.
Exploration adds N(0, exploration_noise²) to μ_φ(s), clipped to [-1, 1]. Noise scales are
in units of the [-1, 1] action range (max action = 1).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from algorithms.common import offpolicy, policies
from algorithms.common.networks import MLP, QNet, polyak
from envs import Env


@dataclasses.dataclass(frozen=True)
class TD3Params:
  """TD3's own hyperparameters (the paper's, with the authors' current 256-256 networks),
  shared by the online config and the offline ones built on TD3 (TD3+BC, PRDC, A2PR)."""

  actor_learning_rate: float = 3e-4
  critic_learning_rate: float = 3e-4
  tau: float = 0.005
  policy_delay: int = 2
  target_noise: float = 0.2
  target_noise_clip: float = 0.5
  exploration_noise: float = 0.1   # offline: only for a non-deterministic policy
  hidden: Sequence[int] = (256, 256)
  activation: str = "relu"

  def validate(self) -> None:
    super().validate()  # the loop's config, next in the MRO
    if self.policy_delay <= 0:
      raise ValueError(f"policy_delay must be positive, got {self.policy_delay}")


@dataclasses.dataclass(frozen=True)
class TD3Config(TD3Params, offpolicy.OffPolicyConfig):
  """TD3 on the shared off-policy loop."""


def networks(config: TD3Config, action_size: int):
  """(actor: obs -> action_size pre-tanh, twin Q net)."""
  return (MLP(tuple(config.hidden), action_size, config.activation),
          QNet(tuple(config.hidden), 2, config.activation))


def smoothed_target_action(target_actor_params, next_obs, key, config: TD3Config, actor_net):
  """ã = clip(μ_φ'(s') + clip(ε, −c, c), −1, 1), ε ~ N(0, σ²): next_obs [N, d] -> [N, a]."""
  next_action = jnp.tanh(actor_net.apply(target_actor_params, next_obs))
  noise = jnp.clip(config.target_noise * jax.random.normal(key, next_action.shape),
                   -config.target_noise_clip, config.target_noise_clip)
  return jnp.clip(next_action + noise, -1.0, 1.0)


def critic_loss(q_params, target_q_params, target_actor_params, batch, key,
                config: TD3Config, actor_net, q_net):
  """L(θ) with target policy smoothing: batch [N, ...] -> (loss, aux)."""
  next_action = smoothed_target_action(target_actor_params, batch["next_obs"], key, config,
                                       actor_net)
  next_q = q_net.apply(target_q_params, batch["next_obs"], next_action).min(-1)
  target = jax.lax.stop_gradient(batch["reward"] + config.discount * batch["discount"] * next_q)
  q = q_net.apply(q_params, batch["obs"], batch["action"])
  loss = jnp.sum(jnp.mean((q - target[:, None]) ** 2, axis=0))
  return loss, {"critic_loss": loss, "q_mean": q.mean()}


def actor_loss(actor_params, q_params, batch, actor_net, q_net):
  """−E[Q_θ1(s, μ_φ(s))]."""
  action = jnp.tanh(actor_net.apply(actor_params, batch["obs"]))
  return -jnp.mean(q_net.apply(q_params, batch["obs"], action)[..., 0])


def actor_turn(step: jax.Array, batch: dict, policy_delay: int) -> jax.Array:
  """Whether critic step `step` (1-based) is followed by the delayed actor step. The
  offline loop passes batch['grad_step'], the same for every seed, so that under vmap the
  test stays unbatched and `lax.cond` runs one branch (its configs keep grad_steps a
  multiple of policy_delay, so both counters give the same turns)."""
  if "grad_step" in batch:
    return (batch["grad_step"] + 1) % policy_delay == 0
  return step % policy_delay == 0


def make_learner(config: TD3Config, env: Env, actor_objective=None) -> offpolicy.Learner:
  """TD3's networks, optimisers and one (critic, maybe actor) gradient step.

  `actor_objective(actor_params, q_params, batch, actor_net, q_net) -> (loss, aux)`
  replaces −E[Q1(s, μ(s))] (TD3+BC's regularised objective); aux scalars join the metrics
  (NaN on steps without an actor update).
  """
  actor_net, q_net = networks(config, env.action_size)
  if actor_objective is None:
    actor_objective = lambda *args: (actor_loss(*args), {})
  actor_opt = optax.adam(config.actor_learning_rate)
  critic_opt = optax.adam(config.critic_learning_rate)

  def init(key):
    k_pi, k_q = jax.random.split(key)
    obs, act = jnp.zeros((1, env.observation_size)), jnp.zeros((1, env.action_size))
    actor, q = actor_net.init(k_pi, obs), q_net.init(k_q, obs, act)
    return {"actor": actor, "q": q, "target_actor": actor, "target_q": q,
            "opt": {"actor": actor_opt.init(actor), "q": critic_opt.init(q)},
            "step": jnp.zeros((), jnp.int32)}

  def explore(lstate, obs, key):
    action = jnp.tanh(actor_net.apply(lstate["actor"], obs))
    return jnp.clip(action + config.exploration_noise * jax.random.normal(key, action.shape),
                    -1.0, 1.0)

  def delayed(lstate, q, batch):
    """Actor step and target updates, run when step % policy_delay == 0."""
    (loss, aux), grads = jax.value_and_grad(actor_objective, has_aux=True)(
        lstate["actor"], q, batch, actor_net, q_net)
    upd, opt_pi = actor_opt.update(grads, lstate["opt"]["actor"])
    actor = optax.apply_updates(lstate["actor"], upd)
    return (actor, opt_pi, polyak(lstate["target_actor"], actor, config.tau),
            polyak(lstate["target_q"], q, config.tau), loss, aux)

  def skip(lstate, q, batch):
    aux = jax.eval_shape(lambda p, qq, b: actor_objective(p, qq, b, actor_net, q_net)[1],
                         lstate["actor"], q, batch)
    return (lstate["actor"], lstate["opt"]["actor"], lstate["target_actor"],
            lstate["target_q"], jnp.float32(jnp.nan),
            jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), aux))

  def update(lstate, batch, key):
    grads, aux = jax.grad(critic_loss, has_aux=True)(
        lstate["q"], lstate["target_q"], lstate["target_actor"], batch, key, config,
        actor_net, q_net)
    upd, opt_q = critic_opt.update(grads, lstate["opt"]["q"])
    q = optax.apply_updates(lstate["q"], upd)
    step = lstate["step"] + 1  # critic updates done, this one included
    actor, opt_pi, target_actor, target_q, a_loss, a_aux = jax.lax.cond(
        actor_turn(step, batch, config.policy_delay), delayed, skip, lstate, q, batch)
    new = {"actor": actor, "q": q, "target_actor": target_actor, "target_q": target_q,
           "opt": {"actor": opt_pi, "q": opt_q}, "step": step}
    return new, {"critic_loss": aux["critic_loss"], "q_mean": aux["q_mean"], "actor_loss": a_loss,
                 **a_aux}

  make_policy, log_prob = policies.deterministic_fns(actor_net, config.exploration_noise)
  return offpolicy.Learner(init=init, explore=explore, update=update,
                           policy=lambda lstate: lstate["actor"],
                           make_policy=make_policy, log_prob=log_prob)


def make_agent(config: TD3Config, env: Env):
  """TD3 as an `Agent` over `env` (which must auto-reset)."""
  return offpolicy.make_agent(config, env, make_learner(config, env))
