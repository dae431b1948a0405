"""Fitted Q evaluation (Le, Voloshin & Yue 2019) of a target policy on logged data, jitted.

The estimand is finite-horizon (T steps), so Q̂ takes the time t/T as an input feature
and does not bootstrap past the horizon: regress
  Q̂(s_t, t, a_t) ← r_t + γ (1 − done_t) mean_k Q̄(s_{t+1}, t+1, a'_k),   a'_k ~ π_e(·|s_{t+1})
over uniformly sampled valid steps, with Q̄ a target network copied every
`target_period` steps. Everything is a pure function of (data, policy params, key), so
`jax.vmap` fits one Q̂ per candidate policy at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from algorithms.common.networks import QNet
from evaluation.data import LoggedData, valid_mask


@dataclasses.dataclass(frozen=True)
class FQEConfig:
  """FQE settings: network, Adam, minibatches, target copies, action samples for V̂."""

  hidden: Sequence[int] = (64, 64)
  learning_rate: float = 1e-3
  num_steps: int = 3000
  batch_size: int = 256
  target_period: int = 100
  num_action_samples: int = 8


def fqe(data: LoggedData, sample_action: Callable[[Any, jax.Array, jax.Array], jax.Array],
        policy_params: Any, discount: float, key: jax.Array,
        config: FQEConfig = FQEConfig()) -> tuple[jax.Array, jax.Array]:
  """Fits Q̂ for one target policy -> (Q̂(s_t, a_t) [N, T], V̂(s_t) [N, T]), 0 on padding.

  sample_action(policy_params, obs [M, d], key) -> action [M, a] samples π_e (or returns
  its action, for a deterministic π_e).
  """
  n, horizon = data.reward.shape
  q_net = QNet(tuple(config.hidden), num=1)
  mask = valid_mask(data.terminated, data.truncated)
  time = jnp.broadcast_to(jnp.arange(horizon) / horizon, (n, horizon))[..., None]
  feats = jnp.concatenate([data.obs, time], axis=-1)                   # [N, T, d+1]
  next_feats = jnp.concatenate([jnp.roll(data.obs, -1, axis=1),
                                (jnp.arange(horizon) + 1.0)[None, :, None].repeat(n, 0) / horizon],
                               axis=-1)
  cont = (mask & ~(data.terminated | data.truncated)).astype(jnp.float32)
  cont = cont.at[:, -1].set(0.0)  # the horizon ends the estimand
  flat = lambda x: x.reshape((n * horizon,) + x.shape[2:])
  feats_f, next_f, act_f = flat(feats), flat(next_feats), flat(data.action)
  rew_f, cont_f = flat(data.reward), flat(cont)
  probs = flat(mask).astype(jnp.float32) / jnp.sum(mask)
  opt = optax.adam(config.learning_rate)

  def value(params, f, k):
    """mean_k Q(f, a_k), a_k ~ π_e(obs of f): f [M, d+1] -> [M]."""
    keys = jax.random.split(k, config.num_action_samples)
    acts = jax.vmap(lambda kk: sample_action(policy_params, f[:, :-1], kk))(keys)
    return jnp.mean(jax.vmap(lambda a: q_net.apply(params, f, a)[:, 0])(acts), axis=0)

  def loss(params, target_params, idx, k):
    target = rew_f[idx] + discount * cont_f[idx] * value(target_params, next_f[idx], k)
    q = q_net.apply(params, feats_f[idx], act_f[idx])[:, 0]
    return jnp.mean((q - jax.lax.stop_gradient(target)) ** 2)

  def step(carry, k):
    params, target_params, opt_state, i = carry
    k_idx, k_act = jax.random.split(k)
    idx = jax.random.choice(k_idx, n * horizon, (config.batch_size,), p=probs)
    grads = jax.grad(loss)(params, target_params, idx, k_act)
    updates, opt_state = opt.update(grads, opt_state)
    params = optax.apply_updates(params, updates)
    target_params = jax.tree.map(
        lambda t, p: jnp.where((i + 1) % config.target_period == 0, p, t), target_params, params)
    return (params, target_params, opt_state, i + 1), None

  k_init, k_train, k_pred = jax.random.split(key, 3)
  params = q_net.init(k_init, feats_f[:1], act_f[:1])
  (params, _, _, _), _ = jax.lax.scan(
      step, (params, params, opt.init(params), jnp.zeros((), jnp.int32)),
      jax.random.split(k_train, config.num_steps))
  q_sa = q_net.apply(params, feats_f, act_f)[:, 0].reshape(n, horizon)
  v_s = value(params, feats_f, k_pred).reshape(n, horizon)
  return q_sa * mask, v_s * mask
