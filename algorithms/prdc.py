"""PRDC (Ran, Li, Zhang, Zhang & Yu 2023, "Policy Regularization with Dataset Constraint
for Offline Reinforcement Learning").

TD3+BC's structure (`algorithms.td3_bc`) with the behaviour-cloning target replaced by the
dataset constraint (paper, eqs. 6–8): the action of the dataset point nearest to
(β s, π(s)) in the (β s, a) space,

  (ŝ, â) = argmin_{(s', a') ∈ D} ‖(β s, π(s)) − (β s', a')‖₂,
  π = argmax_π E_s~D [ λ Q1(s, π(s)) − (π(s) − â)² ],   λ = α / mean |Q1(s, π(s))|,

as the authors' code has it (prdc.py, `train`): the search key uses the current π(s)
with no gradient, k = 1, the states are the dataset-normalised ones (main.py normalises
before building the KD-tree), λ's denominator carries no gradient and the squared error
is the mean over the minibatch and the action dimensions (`F.mse_loss`). The critic, the
target smoothing, the delayed actor and the target updates are TD3's.

The search is exact and jitted (`algorithms.common.nearest`: chunked brute force by
matrix products) instead of the authors' scipy KD-tree on the host; both return the
exact nearest neighbour. Defaults: α = 2.5, β = 2 (the README's Hopper and Walker2d
settings; HalfCheetah uses α = 40), everything else TD3+BC's.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from algorithms import td3
from algorithms.common import nearest, offline
from algorithms.common.agent import Agent
from algorithms.td3_bc import TD3BCConfig
from envs import Env


@dataclasses.dataclass(frozen=True)
class PRDCConfig(TD3BCConfig):
  """PRDC hyperparameters: TD3+BC's and the state scale β of the search space."""

  beta: float = 2.0
  search_chunk: int = 65536       # index points per matrix product of the search

  def validate(self) -> None:
    super().validate()
    if self.beta < 0:
      raise ValueError(f"beta must be >= 0, got {self.beta}")
    if self.search_chunk <= 0:
      raise ValueError(f"search_chunk must be positive, got {self.search_chunk}")


def search_index(tr: dict, stats: offline.Normalizer, beta: float, chunk: int) -> dict:
  """The dataset's (β s_norm, a) points [M, d + a], split for `nearest.nearest_in_chunks`,
  and the actions [M, a] they point to."""
  points = np.concatenate([beta * np.asarray(stats.normalize(tr["obs"])), tr["action"]], -1)
  chunks, valid = nearest.pad_index(jnp.asarray(points, jnp.float32), chunk)
  return {"chunks": chunks, "valid": valid, "action": jnp.asarray(tr["action"])}


def actor_loss(actor_params, q_params, batch, actor_net, q_net, alpha: float, beta: float):
  """−λ E[Q1(s, π(s))] + E[(π(s) − â)²] over batch [B, ...] (with batch['context'] from
  `search_index`) -> (loss, aux)."""
  pi = jnp.tanh(actor_net.apply(actor_params, batch["obs"]))
  q = q_net.apply(q_params, batch["obs"], pi)[..., 0]
  lam = alpha / jax.lax.stop_gradient(jnp.abs(q).mean())
  ctx = batch["context"]
  query = jax.lax.stop_gradient(jnp.concatenate([beta * batch["obs"], pi], -1))
  idx = nearest.nearest_in_chunks(query, ctx["chunks"], ctx["valid"])
  dc = jnp.mean((pi - ctx["action"][idx]) ** 2)
  neighbour = ctx["chunks"].reshape(-1, query.shape[-1])[idx]
  distance = jnp.mean(jnp.linalg.norm(query - neighbour, axis=-1))
  return -lam * q.mean() + dc, {"dc_loss": dc, "lambda": lam, "neighbour_distance": distance}


def make_agent(config: PRDCConfig, env: Env, data: dict) -> Agent:
  """PRDC on logged-data arrays `data` [N, T, ...]; `env` only gives sizes."""
  config.validate()
  learner = td3.make_learner(config, env, actor_objective=lambda p, q, b, a_net, q_net: actor_loss(
      p, q, b, a_net, q_net, config.alpha, config.beta))
  return offline.make_agent(
      learner, data, config,
      context=lambda tr, stats: search_index(tr, stats, config.beta, config.search_chunk))
