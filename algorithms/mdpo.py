"""On-policy Mirror Descent Policy Optimization (Tomar, Shani, Efroni & Ghavamzadeh 2020).

Each iteration k collects a batch with π_θk and takes `sgd_steps` (m) full-batch Adam
steps on the on-policy MDPO objective (the paper's on-policy update: the mirror-descent
step with the KL Bregman term, importance-sampled with π_θk; checked against the
authors' statement of it and their code `mdpo_on/mdpo.py`, not against the paper's
equation numbering, which we could not read here):

    max_θ  E_{s,a ~ π_θk} [ (π_θ(a|s) / π_θk(a|s)) Â^{θk}(s, a) ]  −  (1/t_k) E_s [ KL(π_θ(·|s) ‖ π_θk(·|s)) ]

with no ratio clipping (the KL term is the trust region) and no entropy bonus. The step
size is annealed linearly, t_k = max(1 − k/K, 1/K), so the KL weight 1/t_k grows from 1.
K is the number of iterations in `tk_horizon_steps` env steps: by default 10M, as the
authors' code (`mdpo_on/run_mujoco.py` calls `learn(total_timesteps=10e6)` whatever the
run length, and `mdpo_on/mdpo.py` anneals over int(10e6 / 2048) iterations), so a 1M-step
run only anneals t_k from 1 to 0.9; `tk_horizon_steps=0` anneals over the run's own
`total_steps` instead (the training binary fills it in). The code's t_k = 1 − (k − 1)/K
starts at 1 + 1/K; ours at 1. Â is GAE(λ) standardised over the batch. The KL between
tanh-squashed Gaussians equals that of the Gaussians (tanh is a bijection), so it is
computed in closed form. The value function is fitted apart, `value_epochs` passes of
`value_minibatches` Adam steps on the clipped value loss of the authors' code.

Rewards are normalised by the running std of the discounted return and clipped at ±10
(`normalize_rewards`, `algorithms.common.reward_norm`), as the authors' VecNormalize
does. The value clip of 0.2 is in those normalised units: on raw returns in the
hundreds it would let V move at most 0.2 per iteration.

Hyperparameters (authors' code, `mdpo_on/`): one env × 2048 steps per batch (GAE runs
over the whole 2048-step segment), m = 10, Adam 3e-4 for policy (eps 1e-5) and value
(eps 1e-8, stable-baselines' MpiAdam),
policy gradient norm clipped at 0.5, γ = 0.99, λ = 0.95, value 5 epochs of minibatches
of 128, value clipping 0.2, [64, 64] tanh networks, observations and rewards normalised.

Where the authors' code differs: their policy has a state-independent log-std; ours is
the same state-dependent tanh-Gaussian as our PPO (a shared `algorithms.ppo` batch), so
MDPO and PPO differ only in the update. Truncated episodes bootstrap from the state they
were cut in. π_θk's density and the KL are evaluated on the batch's observations
normalised with the statistics of this iteration, so the objective at θ = θk is exactly
−mean(Â) with zero KL.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from algorithms import ppo
from algorithms.common import distributions, policies
from algorithms.common.agent import Agent
from algorithms.common.minibatches import shuffled_minibatches
from algorithms.common.reward_norm import RewardNormState
from algorithms.common.rollout import episode_stats
from algorithms.common.running_stats import RunningStats
from algorithms.common.value_loss import clipped_value_loss
from envs import Env, EnvState, batch_reset


@dataclasses.dataclass(frozen=True)
class MDPOConfig:
  """On-policy MDPO hyperparameters (paper / authors' code defaults, see module doc)."""

  num_envs: int = 1
  unroll_length: int = 2048
  sgd_steps: int = 10
  total_steps: int = 0
  tk_horizon_steps: int = 10_000_000
  learning_rate: float = 3e-4
  value_learning_rate: float = 3e-4
  value_epochs: int = 5
  value_minibatches: int = 16
  value_clip: float = 0.2
  discount: float = 0.99
  gae_lambda: float = 0.95
  max_grad_norm: float = 0.5
  reward_scaling: float = 1.0
  normalize_rewards: bool = True
  reward_clip: float = 10.0
  normalize_observations: bool = True
  policy_hidden: Sequence[int] = (64, 64)
  value_hidden: Sequence[int] = (64, 64)
  activation: str = "tanh"
  min_std: float = 1e-3
  state_dependent_std: bool = True   # False: one learned scale vector (ppo.networks)

  def validate(self) -> None:
    """Raises ValueError on settings that cannot run (total_steps 0 = set by the runner)."""
    if self.tk_horizon_steps < 0:
      raise ValueError(f"MDPOConfig.tk_horizon_steps must be >= 0, got {self.tk_horizon_steps}")
    for name in ("num_envs", "unroll_length", "sgd_steps", "value_epochs", "value_minibatches"):
      if getattr(self, name) <= 0:
        raise ValueError(f"MDPOConfig.{name} must be positive, got {getattr(self, name)}")
    if self.total_steps < 0:
      raise ValueError(f"MDPOConfig.total_steps must be >= 0, got {self.total_steps}")
    if (self.num_envs * self.unroll_length) % self.value_minibatches:
      raise ValueError(f"num_envs*unroll_length={self.num_envs * self.unroll_length} is not "
                       f"divisible by value_minibatches={self.value_minibatches}")

  @property
  def num_iterations(self) -> int:
    """Iterations of the run, ⌈total_steps / batch⌉."""
    return -(-self.total_steps // (self.num_envs * self.unroll_length))

  @property
  def tk_iterations(self) -> int:
    """K of the t_k schedule: ⌊tk_horizon_steps / batch⌋ (the code's int(10e6 / 2048)), or
    the run's iterations if tk_horizon_steps is 0."""
    if self.tk_horizon_steps == 0:
      return self.num_iterations
    return max(self.tk_horizon_steps // (self.num_envs * self.unroll_length), 1)


@struct.dataclass
class MDPOState:
  """params {'policy', 'value'}, their Adam states, observation statistics, reward
  normalisation state, the envs, the PRNG key and the iteration k."""

  params: dict
  policy_opt: Any
  value_opt: Any
  obs_stats: RunningStats
  reward_norm: RewardNormState
  env_state: EnvState
  key: jax.Array
  update_step: jax.Array


def step_size(num_iterations: int, k: jax.Array) -> jax.Array:
  """t_k = max(1 − k/K, 1/K) for iteration k of K."""
  k = jnp.asarray(k, jnp.float32)
  return jnp.maximum(1.0 - k / num_iterations, 1.0 / num_iterations)


def policy_objective(raw: jax.Array, raw_old: jax.Array, u: jax.Array, advantage: jax.Array,
                     tk: jax.Array, min_std: float) -> tuple[jax.Array, dict]:
  """The on-policy MDPO loss (negated objective) on a batch.

    r = π_θ(u|s) / π_θk(u|s)                 (Gaussian densities of the pre-tanh u)
    L = −mean(r Â) + mean(KL(π_θ(·|s) ‖ π_θk(·|s))) / t_k

  Args: raw, raw_old [B, 2a] network outputs of π_θ and π_θk; u [B, a]; advantage [B]
  (already standardised); tk [] step size. Returns (L, {'policy_loss', 'kl', 'ratio'}).
  """
  new, old = distributions.gaussian(raw, min_std), distributions.gaussian(raw_old, min_std)
  ratio = jnp.exp(new.log_prob(u) - old.log_prob(u))
  kl = new.kl_divergence(old)
  loss = -jnp.mean(ratio * advantage) + jnp.mean(kl) / tk
  return loss, {"policy_loss": loss, "kl": kl.mean(), "ratio": ratio.mean()}


def make_agent(config: MDPOConfig, env: Env) -> Agent:
  """On-policy MDPO as an `Agent` over `env` (auto-resetting); config.total_steps > 0 when
  tk_horizon_steps is 0."""
  config.validate()
  if config.tk_horizon_steps == 0 and config.total_steps <= 0:
    raise ValueError("MDPOConfig.total_steps must be set (> 0) when tk_horizon_steps=0: "
                     "t_k then anneals over the run")
  num_iterations = config.tk_iterations
  pcfg = ppo.PPOConfig(num_envs=config.num_envs, unroll_length=config.unroll_length,
                       discount=config.discount, gae_lambda=config.gae_lambda,
                       reward_scaling=config.reward_scaling,
                       normalize_rewards=config.normalize_rewards,
                       reward_clip=config.reward_clip,
                       normalize_observations=config.normalize_observations,
                       policy_hidden=config.policy_hidden, value_hidden=config.value_hidden,
                       activation=config.activation, min_std=config.min_std,
                       state_dependent_std=config.state_dependent_std)
  policy_net, value_net = ppo.networks(pcfg, env)
  policy_opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                           optax.adam(config.learning_rate, eps=1e-5))
  value_opt = optax.adam(config.value_learning_rate)   # MpiAdam's eps 1e-8
  make_policy, log_prob = policies.tanh_gaussian_fns(policy_net, config.min_std)
  batch_size = config.num_envs * config.unroll_length

  def init(key):
    k_pi, k_v, k_env, key = jax.random.split(key, 4)
    dummy = jnp.zeros((1, env.observation_size))
    params = {"policy": policy_net.init(k_pi, dummy), "value": value_net.init(k_v, dummy)}
    return MDPOState(params=params, policy_opt=policy_opt.init(params["policy"]),
                     value_opt=value_opt.init(params["value"]),
                     obs_stats=RunningStats.create(env.observation_size),
                     reward_norm=RewardNormState.create(config.num_envs),
                     env_state=batch_reset(env, k_env, config.num_envs), key=key,
                     update_step=jnp.zeros((), jnp.int32))

  def update(state: MDPOState):
    key, k_roll, k_value = jax.random.split(state.key, 3)
    env_state, obs_stats, rew_norm, batch, tr = ppo.collect(
        pcfg, env, policy_net, value_net, state.params, state.obs_stats, state.reward_norm,
        state.env_state, k_roll)
    adv = batch["advantage"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    raw_old = policy_net.apply(state.params["policy"], batch["obs"])
    tk = step_size(num_iterations, state.update_step)

    def policy_step(carry, _):
      params, opt = carry
      loss_fn = lambda p: policy_objective(policy_net.apply(p, batch["obs"]), raw_old,
                                           batch["u"], adv, tk, config.min_std)
      grads, aux = jax.grad(loss_fn, has_aux=True)(params)
      updates, opt = policy_opt.update(grads, opt, params)
      return (optax.apply_updates(params, updates), opt), aux

    (pi_params, pi_opt), pi_aux = jax.lax.scan(
        policy_step, (state.params["policy"], state.policy_opt), None, length=config.sgd_steps)

    def value_step(carry, mb):
      params, opt = carry
      grads, loss = jax.value_and_grad(lambda p: jnp.mean(clipped_value_loss(
          value_net.apply(p, mb["obs"]), mb["value"], mb["target"], config.value_clip)))(params)[::-1]
      updates, opt = value_opt.update(grads, opt, params)
      return (optax.apply_updates(params, updates), opt), loss

    def value_epoch(carry, k):
      return jax.lax.scan(value_step, carry,
                          shuffled_minibatches(k, batch, config.value_minibatches))

    (v_params, v_opt), v_loss = jax.lax.scan(
        value_epoch, (state.params["value"], state.value_opt),
        jax.random.split(k_value, config.value_epochs))
    metrics = {**jax.tree.map(lambda x: x[-1], pi_aux), "value_loss": v_loss.mean(), "tk": tk,
               **episode_stats(tr)}
    new_state = MDPOState(params={"policy": pi_params, "value": v_params}, policy_opt=pi_opt,
                          value_opt=v_opt, obs_stats=obs_stats, reward_norm=rew_norm,
                          env_state=env_state, key=key, update_step=state.update_step + 1)
    return new_state, metrics

  def policy_params(state: MDPOState):
    return {"policy": state.params["policy"], "obs_stats": state.obs_stats}

  return Agent(init=init, update=update, policy_params=policy_params,
               make_policy=make_policy, log_prob=log_prob, steps_per_update=batch_size)
