"""Implicit Q-Learning (Kostrikov, Nair & Levine 2021, "Offline Reinforcement Learning
with Implicit Q-Learning").

Per gradient step, in the order of the authors' code (learner.py, `_update_jit`):

  1. value, expectile regression on the target critics (paper eq. 5):
       L_V(ψ) = E[ L₂^τ( min_i Q_θ̂i(s, a) − V_ψ(s) ) ],   L₂^τ(u) = |τ − 1(u < 0)| u²
  2. policy, advantage-weighted regression (eq. 7), with the new V:
       L_π(φ) = −E[ min(exp(β (min_i Q_θ̂i(s, a) − V_ψ(s))), 100) log π_φ(a | s) ]
  3. critics (eq. 6), bootstrapping from the new V:
       L_Q(θ) = E[ Σ_i (r + γ (1 − terminal) V_ψ(s') − Q_θi(s, a))² ]
  4. θ̂ ← τ_p θ + (1 − τ_p) θ̂.

π_φ is a Gaussian with mean tanh(f_φ(s)) and a state-independent log std (a parameter,
initialised at 0, clipped to [−5, 2]); it is not tanh-squashed (policy.py,
`NormalTanhPolicy(..., tanh_squash_distribution=False)`). The policy's Adam step size
follows a cosine decay from 3e-4 to 0 over the run's gradient steps. Locomotion rewards
are scaled by 1000 / (max − min trajectory return) of the dataset (train_offline.py,
`normalize`); observations are not normalised. Defaults are the authors' MuJoCo config:
τ = 0.7, β = 3, 256-256 ReLU networks, Adam 3e-4, batch 256, γ = 0.99, τ_p = 0.005.
Evaluation acts with the mean. Initialisation is flax's LeCun, not orthogonal(√2).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms.common import offline
from algorithms.common.agent import Agent
from algorithms.common.networks import MLP, QNet, ValueNet, polyak
from envs import Env

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclasses.dataclass(frozen=True)
class IQLConfig(offline.OfflineConfig):
  """IQL hyperparameters (the authors' configs/mujoco_config.py)."""

  expectile: float = 0.7
  temperature: float = 3.0           # β, the inverse temperature of the AWR weights
  max_weight: float = 100.0
  actor_learning_rate: float = 3e-4
  value_learning_rate: float = 3e-4
  critic_learning_rate: float = 3e-4
  tau: float = 0.005
  hidden: Sequence[int] = (256, 256)
  activation: str = "relu"
  cosine_decay: bool = True          # the actor's step size, over `total_steps`
  total_steps: int = 0               # gradient steps of the run; 0: the run's (filled in)
  reward_scale_by_return_range: bool = True   # locomotion: 1000 / (max − min return)
  normalize_observations: bool = False

  def validate(self) -> None:
    super().validate()
    if not 0.0 < self.expectile < 1.0:
      raise ValueError(f"expectile must be in (0, 1), got {self.expectile}")
    if self.total_steps < 0:
      raise ValueError(f"total_steps must be >= 0, got {self.total_steps}")


class GaussianPolicy(nn.Module):
  """obs [..., d] -> (mean tanh(f(obs)) [..., a], log_std [a] clipped to [−5, 2])."""

  hidden: Sequence[int]
  action_size: int
  activation: str = "relu"

  @nn.compact
  def __call__(self, obs):
    act = getattr(nn, self.activation)
    x = act(MLP(tuple(self.hidden[:-1]), self.hidden[-1], self.activation)(obs)) if self.hidden \
        else obs
    mean = jnp.tanh(nn.Dense(self.action_size)(x))
    log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))
    return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def gaussian_log_prob(mean, log_std, action):
  """Σ_dims log N(action; mean, exp(log_std)²): [..., a] -> [...]."""
  z = (action - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * z ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def expectile_loss(diff, expectile: float):
  """E[|τ − 1(u < 0)| u²] for u = diff [B]."""
  weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
  return jnp.mean(weight * diff ** 2)


def value_loss(v_params, target_q_params, batch, v_net, q_net, expectile):
  q = q_net.apply(target_q_params, batch["obs"], batch["action"]).min(-1)
  v = v_net.apply(v_params, batch["obs"])
  loss = expectile_loss(jax.lax.stop_gradient(q) - v, expectile)
  return loss, {"value_loss": loss, "v_mean": v.mean()}


def actor_loss(pi_params, v_params, target_q_params, batch, pi_net, v_net, q_net,
               temperature, max_weight):
  """−E[w log π(a|s)], w = min(exp(β(Q − V)), max) -> (loss, aux); aux's `weight_ess`:
  the weights' effective sample size (Σw)² / (B Σw²) as a fraction of the batch B."""
  q = q_net.apply(target_q_params, batch["obs"], batch["action"]).min(-1)
  v = v_net.apply(v_params, batch["obs"])
  weight = jax.lax.stop_gradient(jnp.minimum(jnp.exp(temperature * (q - v)), max_weight))
  mean, log_std = pi_net.apply(pi_params, batch["obs"])
  loss = -jnp.mean(weight * gaussian_log_prob(mean, log_std, batch["action"]))
  ess = jnp.sum(weight) ** 2 / (weight.shape[0] * jnp.sum(weight ** 2))
  return loss, {"actor_loss": loss, "adv_weight": weight.mean(), "weight_ess": ess}


def critic_loss(q_params, v_params, batch, v_net, q_net, discount):
  next_v = v_net.apply(v_params, batch["next_obs"])
  target = jax.lax.stop_gradient(batch["reward"] + discount * batch["discount"] * next_v)
  q = q_net.apply(q_params, batch["obs"], batch["action"])
  loss = jnp.mean(jnp.sum((q - target[:, None]) ** 2, axis=-1))
  return loss, {"critic_loss": loss, "q_mean": q.mean()}


def scale_rewards(data: dict) -> dict:
  """Rewards × 1000 / (max − min undiscounted trajectory return) of the dataset."""
  returns = offline.transitions(data)["returns"]
  spread = float(np.max(returns) - np.min(returns))
  if spread <= 0:
    raise ValueError("reward_scale_by_return_range needs trajectories with different returns")
  return {**data, "reward": np.asarray(data["reward"], np.float32) * (1000.0 / spread)}


def make_learner(config: IQLConfig, env: Env) -> offline.Learner:
  """IQL's networks, optimisers and one gradient step."""
  pi_net = GaussianPolicy(tuple(config.hidden), env.action_size, config.activation)
  v_net = ValueNet(tuple(config.hidden), config.activation)
  q_net = QNet(tuple(config.hidden), 2, config.activation)
  pi_lr = (optax.cosine_decay_schedule(config.actor_learning_rate, config.total_steps)
           if config.cosine_decay else config.actor_learning_rate)
  pi_opt, v_opt = optax.adam(pi_lr), optax.adam(config.value_learning_rate)
  q_opt = optax.adam(config.critic_learning_rate)

  def init(key):
    k_pi, k_v, k_q = jax.random.split(key, 3)
    obs, act = jnp.zeros((1, env.observation_size)), jnp.zeros((1, env.action_size))
    pi, v, q = pi_net.init(k_pi, obs), v_net.init(k_v, obs), q_net.init(k_q, obs, act)
    return {"pi": pi, "v": v, "q": q, "target_q": q,
            "opt": {"pi": pi_opt.init(pi), "v": v_opt.init(v), "q": q_opt.init(q)}}

  def step(params, opt_state, opt, loss_fn, *args):
    grads, aux = jax.grad(loss_fn, has_aux=True)(params, *args)
    upd, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, upd), opt_state, aux

  def update(ls, batch, key):
    del key
    v, opt_v, aux_v = step(ls["v"], ls["opt"]["v"], v_opt, value_loss, ls["target_q"], batch,
                           v_net, q_net, config.expectile)
    pi, opt_pi, aux_pi = step(ls["pi"], ls["opt"]["pi"], pi_opt, actor_loss, v, ls["target_q"],
                              batch, pi_net, v_net, q_net, config.temperature, config.max_weight)
    q, opt_q, aux_q = step(ls["q"], ls["opt"]["q"], q_opt, critic_loss, v, batch, v_net, q_net,
                           config.discount)
    new = {"pi": pi, "v": v, "q": q, "target_q": polyak(ls["target_q"], q, config.tau),
           "opt": {"pi": opt_pi, "v": opt_v, "q": opt_q}}
    return new, {**aux_v, **aux_pi, **aux_q}

  def make_policy(params, deterministic: bool = False):
    def policy(obs, key):
      mean, log_std = pi_net.apply(params["policy"], params["obs_stats"].normalize(obs))
      if deterministic:
        return mean
      return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)
    return policy

  def log_prob(params, obs, action):
    mean, log_std = pi_net.apply(params["policy"], params["obs_stats"].normalize(obs))
    return gaussian_log_prob(mean, log_std, action)

  return offline.Learner(init=init, update=update, policy=lambda ls: ls["pi"],
                         make_policy=make_policy, log_prob=log_prob)


def make_agent(config: IQLConfig, env: Env, data: dict) -> Agent:
  """IQL on logged-data arrays `data` [N, T, ...] (`env` gives sizes)."""
  config.validate()
  if config.cosine_decay and config.total_steps <= 0:
    raise ValueError("IQL's cosine_decay needs total_steps > 0 (the run's gradient steps)")
  if config.reward_scale_by_return_range:
    data = scale_rewards(data)
  return offline.make_agent(make_learner(config, env), data, config)
