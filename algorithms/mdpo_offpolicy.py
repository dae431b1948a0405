"""Off-policy Mirror Descent Policy Optimization (Tomar, Shani, Efroni & Ghavamzadeh,
"Mirror Descent Policy Optimization", ICLR 2022; arXiv:2005.09814 §5).

Each iteration k approximately solves the entropy-regularised mirror-descent step

  π_{k+1} = argmax_π E_{s~D} E_{a~π}[Q^{π_k}_λ(s, a) − λ log π_k(a|s)] − (1/t_k) KL(π ‖ π_k)

with `m` gradient steps (one per env step, paper §5.2) on the reparameterised loss

  L(θ) = E_{s~D, ε}[(1/t_k)(log π_θ(ã|s) − log π_θk(ã|s)) + λ log π_θk(ã|s) − min_i Q_i(s, ã)],
         ã = tanh(μ_θ(s) + σ_θ(s) ε),

where θ_k is the policy m gradient steps ago. Replacing π_θk by the uniform policy gives
SAC's loss (paper §5.3). Critics as in the paper's appendix: twin Q-functions, a state
value V with a Polyak-averaged target V̄,

  y_Q = r + γ (1 − terminal) V̄(s'),          L_Q = Σ_i E[½ (Q_i(s, a) − y_Q)²]
  y_V = min_i Q_i(s, ã) − λ log π_θ(ã|s),    L_V = E[½ (V(s) − y_V)²]

Hyperparameters follow the paper's appendix: λ = 0.2 for all tasks, m = 1000, Adam 3e-4,
batch 256, τ = 0.005, γ = 0.99, 256-256 networks. The paper keeps the Bregman step size
t_k *fixed* in its off-policy experiments (annealing t_k = 1 − k/K is its on-policy
choice); `tk_schedule="linear"` offers that annealing here as an option, over the K
mirror-descent iterations of the run (its gradient steps / m, from `total_steps`, which
the training binary fills in; `num_iterations` > 0 sets K by hand). The fixed value
is not in the paper's text we could read; `t_k = 1` follows the authors' README command
(`--klcoeff=1.0`, i.e. 1/t_k = 1).

Where the authors' code (manantomar/Mirror-Descent-Policy-Optimization, mdpo_off) differs
and we follow the paper: the code's actor uses Q1 rather than min(Q1, Q2), adds
1e-3·(mean μ² + mean log σ²) regularisers, and acts with the deterministic tanh(μ) after
warm-up; here the actor uses min_i Q_i, has no extra regulariser, and explores by
sampling π_θ.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from algorithms.common import distributions, offpolicy, policies
from algorithms.common.networks import MLP, QNet, ValueNet, polyak
from envs import Env


@dataclasses.dataclass(frozen=True)
class MDPOOffConfig(offpolicy.OffPolicyConfig):
  """Off-policy MDPO hyperparameters (paper appendix) plus the shared loop's."""

  learning_rate: float = 3e-4
  tau: float = 0.005
  entropy_coef: float = 0.2          # λ
  iteration_length: int = 1000       # m: gradient steps per mirror-descent iteration
  tk: float = 1.0                    # Bregman step size t_k (fixed schedule)
  tk_schedule: str = "constant"      # "constant" (paper, off-policy) or "linear"
  num_iterations: int = 0            # K of the linear schedule; 0: the run's iterations
  total_steps: int = 0               # env steps of the run (set by the training binary)
  hidden: Sequence[int] = (256, 256)
  activation: str = "relu"
  min_std: float = 1e-3

  def validate(self) -> None:
    super().validate()
    if self.tk_schedule not in ("constant", "linear"):
      raise ValueError(f"tk_schedule must be 'constant' or 'linear', got {self.tk_schedule!r}")
    if self.iteration_length <= 0 or self.num_iterations < 0 or self.tk <= 0:
      raise ValueError("iteration_length and tk must be positive, num_iterations >= 0")
    if self.tk_schedule == "linear" and self.num_iterations == 0 and self.total_steps <= 0:
      raise ValueError("the linear t_k schedule anneals over the run: set total_steps "
                       "(the training binary does) or num_iterations")

  @property
  def tk_iterations(self) -> int:
    """K: `num_iterations`, or the run's mirror-descent iterations, ⌈G / m⌉ for the G
    gradient steps of ⌈(total_steps − learning_starts) / (num_envs · unroll_length)⌉
    updates."""
    if self.num_iterations > 0:
      return self.num_iterations
    per_update = self.num_envs * self.unroll_length
    updates = -(-max(self.total_steps - self.learning_starts, 0) // per_update)
    return max(-(-updates * self.grad_steps_per_update // self.iteration_length), 1)


def step_size(config: MDPOOffConfig, iteration: jax.Array) -> jax.Array:
  """t_k for iteration k (0-based): `tk`, or max(1 − k/K, 1/K)·tk when linear (K =
  config.tk_iterations)."""
  if config.tk_schedule == "constant":
    return jnp.float32(config.tk)
  k, big_k = iteration.astype(jnp.float32), config.tk_iterations
  return config.tk * jnp.maximum(1.0 - k / big_k, 1.0 / big_k)


def networks(config: MDPOOffConfig, action_size: int):
  """(policy net: obs -> 2·action_size, twin Q net, V net)."""
  return (MLP(tuple(config.hidden), 2 * action_size, config.activation),
          QNet(tuple(config.hidden), 2, config.activation),
          ValueNet(tuple(config.hidden), config.activation))


def actor_loss(actor_params, old_actor_params, q_params, batch, key, tk,
               config: MDPOOffConfig, policy_net, q_net):
  """L(θ) above -> (loss, aux with the KL estimate and log π_θ(ã|s) [N])."""
  raw = policy_net.apply(actor_params, batch["obs"])
  dist = distributions.gaussian(raw, config.min_std)
  u = dist.sample(seed=key)  # reparameterised pre-tanh sample: gradients flow through it
  log_det = distributions.tanh_log_det(u)
  log_prob = dist.log_prob(u) - log_det
  old_raw = policy_net.apply(old_actor_params, batch["obs"])
  old_log_prob = distributions.gaussian(old_raw, config.min_std).log_prob(u) - log_det
  q = q_net.apply(q_params, batch["obs"], jnp.tanh(u)).min(-1)
  kl = log_prob - old_log_prob
  loss = jnp.mean(kl / tk + config.entropy_coef * old_log_prob - q)
  return loss, {"actor_loss": loss, "kl": kl.mean(), "log_prob": log_prob}


def critic_loss(critic_params, target_v_params, actor_params, batch, key,
                config: MDPOOffConfig, policy_net, q_net, v_net):
  """L_Q + L_V; critic_params {'q', 'v'} -> (loss, aux)."""
  next_v = v_net.apply(target_v_params, batch["next_obs"])
  y_q = jax.lax.stop_gradient(batch["reward"] + config.discount * batch["discount"] * next_v)
  q = q_net.apply(critic_params["q"], batch["obs"], batch["action"])
  q_loss = 0.5 * jnp.sum(jnp.mean((q - y_q[:, None]) ** 2, axis=0))
  raw = policy_net.apply(actor_params, batch["obs"])
  action, log_prob = distributions.tanh_gaussian(raw, config.min_std).sample_and_log_prob(seed=key)
  q_new = q_net.apply(critic_params["q"], batch["obs"], action).min(-1)
  y_v = jax.lax.stop_gradient(q_new - config.entropy_coef * log_prob)
  v_loss = 0.5 * jnp.mean((v_net.apply(critic_params["v"], batch["obs"]) - y_v) ** 2)
  return q_loss + v_loss, {"q_loss": q_loss, "v_loss": v_loss, "q_mean": q.mean()}


def make_learner(config: MDPOOffConfig, env: Env) -> offpolicy.Learner:
  """Off-policy MDPO's networks, optimisers and one gradient step."""
  policy_net, q_net, v_net = networks(config, env.action_size)
  actor_opt = optax.adam(config.learning_rate)
  critic_opt = optax.adam(config.learning_rate)

  def init(key):
    k_pi, k_q, k_v = jax.random.split(key, 3)
    obs, act = jnp.zeros((1, env.observation_size)), jnp.zeros((1, env.action_size))
    actor = policy_net.init(k_pi, obs)
    critic = {"q": q_net.init(k_q, obs, act), "v": v_net.init(k_v, obs)}
    return {"actor": actor, "old_actor": actor, "critic": critic, "target_v": critic["v"],
            "opt": {"actor": actor_opt.init(actor), "critic": critic_opt.init(critic)},
            "step": jnp.zeros((), jnp.int32)}

  def explore(lstate, obs, key):
    raw = policy_net.apply(lstate["actor"], obs)
    return distributions.tanh_gaussian(raw, config.min_std).sample(seed=key)

  def update(lstate, batch, key):
    k_actor, k_critic = jax.random.split(key)
    tk = step_size(config, lstate["step"] // config.iteration_length)
    c_grads, c_aux = jax.grad(critic_loss, has_aux=True)(
        lstate["critic"], lstate["target_v"], lstate["actor"], batch, k_critic, config,
        policy_net, q_net, v_net)
    a_grads, a_aux = jax.grad(actor_loss, has_aux=True)(
        lstate["actor"], lstate["old_actor"], lstate["critic"]["q"], batch, k_actor, tk,
        config, policy_net, q_net)
    c_upd, opt_c = critic_opt.update(c_grads, lstate["opt"]["critic"])
    a_upd, opt_a = actor_opt.update(a_grads, lstate["opt"]["actor"])
    critic = optax.apply_updates(lstate["critic"], c_upd)
    actor = optax.apply_updates(lstate["actor"], a_upd)
    step = lstate["step"] + 1
    new_iteration = step % config.iteration_length == 0  # θ_k ← θ after m steps
    old_actor = jax.tree.map(lambda new, old: jnp.where(new_iteration, new, old),
                             actor, lstate["old_actor"])
    new = {"actor": actor, "old_actor": old_actor, "critic": critic,
           "target_v": polyak(lstate["target_v"], critic["v"], config.tau),
           "opt": {"actor": opt_a, "critic": opt_c}, "step": step}
    metrics = {"actor_loss": a_aux["actor_loss"], "kl": a_aux["kl"], "tk": tk,
               "q_loss": c_aux["q_loss"], "v_loss": c_aux["v_loss"], "q_mean": c_aux["q_mean"],
               "entropy": -a_aux["log_prob"].mean()}
    return new, metrics

  make_policy, log_prob = policies.tanh_gaussian_fns(policy_net, config.min_std)
  return offpolicy.Learner(init=init, explore=explore, update=update,
                           policy=lambda lstate: lstate["actor"],
                           make_policy=make_policy, log_prob=log_prob)


def make_agent(config: MDPOOffConfig, env: Env):
  """Off-policy MDPO as an `Agent` over `env` (which must auto-reset)."""
  return offpolicy.make_agent(config, env, make_learner(config, env))
