"""TD3+BC (Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning").

TD3 (`algorithms.td3`: twin critics, target policy smoothing, delayed actor and target
updates) trained on a fixed dataset, with the actor's objective (paper, eq. 3) regularised
towards the dataset's actions:

  π = argmax_π E_(s,a)~D [ λ Q(s, π(s)) − (π(s) − a)² ],   λ = α / ((1/N) Σ_i |Q(s_i, π(s_i))|)

as the authors' code has it (TD3_BC.py, `train`): Q is the first critic, λ's denominator
is the minibatch mean of |Q1(s, π(s))| with no gradient, and the squared error is the
mean over the minibatch and the action dimensions (`F.mse_loss`). States are z-scored
with the dataset's mean and std + 1e-3 (utils.py, `normalize_states`), for training and
evaluation. Defaults are the paper's: α = 2.5, 256-256 ReLU networks, Adam 3e-4, batch
256, γ = 0.99, τ = 0.005, policy noise 0.2 clipped at 0.5, actor every 2 critic steps.
Initialisation is flax's (LeCun normal), not PyTorch's default uniform.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from algorithms import td3
from algorithms.common import offline
from algorithms.common.agent import Agent
from envs import Env


@dataclasses.dataclass(frozen=True)
class TD3BCConfig(td3.TD3Params, offline.OfflineConfig):
  """TD3+BC hyperparameters: TD3's (the paper's and the authors' code's defaults) and α."""

  alpha: float = 2.5

  def validate(self) -> None:
    super().validate()
    if self.grad_steps % self.policy_delay:
      raise ValueError(f"policy_delay must be positive and divide grad_steps, got "
                       f"{self.policy_delay} and {self.grad_steps}")
    if self.alpha < 0:
      raise ValueError(f"alpha must be >= 0, got {self.alpha}")


def actor_loss(actor_params, q_params, batch, actor_net, q_net, alpha: float):
  """−λ E[Q1(s, π(s))] + E[(π(s) − a)²] over batch [B, ...] -> (loss, aux)."""
  pi = jnp.tanh(actor_net.apply(actor_params, batch["obs"]))
  q = q_net.apply(q_params, batch["obs"], pi)[..., 0]
  lam = alpha / jax.lax.stop_gradient(jnp.abs(q).mean())
  bc = jnp.mean((pi - batch["action"]) ** 2)
  return -lam * q.mean() + bc, {"bc_loss": bc, "lambda": lam}


def make_agent(config: TD3BCConfig, env: Env, data: dict) -> Agent:
  """TD3+BC on logged-data arrays `data` [N, T, ...]; `env` only gives sizes (evaluation
  uses it elsewhere)."""
  config.validate()
  learner = td3.make_learner(config, env, actor_objective=lambda p, q, b, a_net, q_net: actor_loss(
      p, q, b, a_net, q_net, config.alpha))
  # TD3's learner serves as is (its `explore` goes unused offline).
  return offline.make_agent(learner, data, config)
