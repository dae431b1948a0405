"""PROPS: Proximal Robust On-Policy Sampling (Corrado & Hanna, "On-Policy Policy Gradient
Reinforcement Learning Without On-Policy Sampling").

PPO whose data comes from a separate *behaviour* policy π_φ, adapted so that the data
in the buffer looks more like on-policy data of the target π_θ than on-policy sampling
itself would (lower sampling error, `evaluation.sampling_error`). One `update` is one
target iteration of n = segments · num_envs · unroll_length env steps:

  repeat `segments` times:
    collect m = num_envs · unroll_length steps with π_φ into a buffer holding the last
      b · n transitions (b = buffer_batches), oldest first, observations un-normalised;
    on the last segment, the PPO update of π_θ (below);
    φ ← θ, then the PROPS update of π_φ on the buffer (without the m oldest transitions
      when it is full: they are the next to leave).

PROPS update (the paper's clipped behaviour objective with its KL regulariser): with
r = π_φ(a|s) / π_θ(a|s) over the buffer,

    L(φ) = mean[ max(r, clip(r, 1 − ε_PROPS, 1 + ε_PROPS)) ] + λ · mean_{s, dims} KL(π_φ(·|s) ‖ π_θ(·|s))

i.e. PPO's clipped surrogate with advantage −1: it lowers the probability of actions the
buffer already holds (so under-sampled ones become likelier) until r reaches 1 − ε, while
the KL term keeps π_φ near π_θ. `props_epochs` passes of `props_minibatches` Adam steps,
stopped for the iteration once mean((r − 1) − log r) exceeds δ_PROPS (`props_target_kl`).

PPO update of π_θ on all b · n buffered transitions, as the authors' code does: log-probs,
values and GAE(λ) are recomputed for every stored (s, a) with the current θ and critic
(the ratios are to the current target, not to the behaviour policy that collected the
data), observations normalised with the current statistics; clipped surrogate, value loss,
entropy bonus, `num_epochs` × `num_minibatches`, learning rate annealed linearly over
the run, stopped once the approximate KL exceeds `target_kl`.

Minibatches have a fixed size (PPO: b·n / num_minibatches; PROPS: (b·n − m) /
props_minibatches, as the code) and are drawn from the buffer's filled rows only, so
while the buffer fills there are fewer of them rather than as many nearly empty ones.
The value loss is clipped around the values of the buffer's recomputation (CleanRL's
`clip_vloss` with the policy clip 0.2, as the code).

Rewards are normalised as the code's env wrappers do (`normalize_rewards`,
`algorithms.common.reward_norm`): divided by the running std of the discounted return
and clipped at ±10 when collected; the buffer keeps them un-normalised (times the scale
they were normalised with) and every update divides by the current scale. The learning
rates and gradient clip above assume this.

`props=False` gives the paper's baselines with the same code: PPO with a buffer of b
batches (behaviour = target), and on-policy PPO with b = 1. `authors_settings(task,
variant)` holds the authors' per-environment settings of all three.

Defaults are the authors' tuned Hopper setting (code `PPOROS`, commands/rl_props.txt):
n = 2048, m = 256, b = 2, PPO lr 1e-3 annealed, 10 epochs × 32 minibatches, clip 0.2,
entropy 0.01, target KL 0.03, PROPS lr 1e-3, 16 epochs × 16 minibatches, ε_PROPS = 0.3,
λ = 0.3, δ_PROPS = 0.05, gradient norms clipped at 0.5, [64, 64] tanh networks.
Differences from that code: the code's env is one env stepping n times (our
`authors_settings` use num_envs = 1 too; other layouts run GAE over per-env segments of
the buffer); the reward statistics' return restarts at every episode end (the code's
wrapper only at terminations); truncated episodes bootstrap from the state they were cut
in (the code treats them as terminal); the policy is our PPO's tanh-squashed Gaussian
with state-dependent std (theirs a tanh-bounded mean with state-independent log-std);
after the PPO update, the PROPS update uses π_θ's fresh log-probs and KL anchor (the code
reuses the log-probs, means and stds computed before the PPO update, contrary to its own
comment "recompute logprobs before every update"); observation statistics are updated
once per collected segment (the code: every step), normalised observations are clipped
at ±10 in updates too (the code: when acting), and PPO's entropy bonus is a one-sample
estimate of the squashed policy's entropy (the code: the Gaussian's, exactly).
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
from algorithms.common.gae import gae
from algorithms.common import reward_norm
from algorithms.common import sampling_error as se
from algorithms.common.minibatches import valid_minibatches
from algorithms.common.reward_norm import RewardNormState
from algorithms.common.rollout import episode_stats, rollout
from algorithms.common.running_stats import RunningStats
from envs import Env, EnvState, batch_reset


@dataclasses.dataclass(frozen=True)
class PROPSConfig:
  """PROPS (and, with props=False, PPO with a buffer) hyperparameters; see module doc."""

  num_envs: int = 8
  unroll_length: int = 32
  segments: int = 8
  buffer_batches: int = 2
  props: bool = True
  total_steps: int = 0
  learning_rate: float = 1e-3
  anneal_lr: bool = True
  num_epochs: int = 10
  num_minibatches: int = 32
  clip_eps: float = 0.2
  value_coef: float = 0.5
  value_clip: float = 0.2
  entropy_coef: float = 0.01
  target_kl: float = 0.03
  max_grad_norm: float = 0.5
  discount: float = 0.99
  gae_lambda: float = 0.95
  reward_scaling: float = 1.0
  normalize_rewards: bool = True
  reward_clip: float = 10.0
  normalize_observations: bool = True
  normalize_advantage: bool = True
  props_learning_rate: float = 1e-3
  props_epochs: int = 16
  props_minibatches: int = 16
  props_clip: float = 0.3
  props_kl_coef: float = 0.3
  props_target_kl: float = 0.05
  sampling_error_epochs: int = 0
  policy_hidden: Sequence[int] = (64, 64)
  value_hidden: Sequence[int] = (64, 64)
  activation: str = "tanh"
  min_std: float = 1e-3
  state_dependent_std: bool = True   # False: one learned scale vector (ppo.networks)

  @property
  def segment_size(self) -> int:
    """m: env steps between behaviour updates."""
    return self.num_envs * self.unroll_length

  @property
  def batch_size(self) -> int:
    """n: env steps per target update."""
    return self.segment_size * self.segments

  @property
  def buffer_size(self) -> int:
    """b · n transitions kept."""
    return self.batch_size * self.buffer_batches

  @property
  def ppo_minibatch_size(self) -> int:
    """b · n / num_minibatches (fewer minibatches, not smaller ones, while filling)."""
    return self.buffer_size // self.num_minibatches

  @property
  def props_minibatch_size(self) -> int:
    """(b · n − m) / props_minibatches, as the code: the PROPS update leaves out the m
    oldest transitions of a full buffer."""
    return (self.buffer_size - self.segment_size) // self.props_minibatches

  def validate(self) -> None:
    """Raises ValueError on settings that cannot run (total_steps 0 = set by the runner)."""
    for name in ("num_envs", "unroll_length", "segments", "buffer_batches", "num_epochs",
                 "num_minibatches", "props_epochs", "props_minibatches"):
      if getattr(self, name) <= 0:
        raise ValueError(f"PROPSConfig.{name} must be positive, got {getattr(self, name)}")
    if self.buffer_size % self.num_minibatches:
      raise ValueError(f"the buffer's {self.buffer_size} transitions are not divisible by "
                       f"num_minibatches={self.num_minibatches}")
    if self.props and self.props_minibatch_size < 1:
      raise ValueError(f"the PROPS update has (b·n − m) = {self.buffer_size - self.segment_size} "
                       f"transitions for props_minibatches={self.props_minibatches}: "
                       "use more segments or buffer_batches")
    if self.reward_clip <= 0:
      raise ValueError(f"PROPSConfig.reward_clip must be positive, got {self.reward_clip}")
    if self.total_steps < 0 or self.sampling_error_epochs < 0:
      raise ValueError("PROPSConfig.total_steps and sampling_error_epochs must be >= 0")


# The authors' tuned settings (PPOROS, PROPS/commands/rl_props.txt for PROPS and
# hyperparams/ppo_buffer.py for the baselines) as config overrides, per MuJoCo task:
# n = segments · m env steps per target update, m = unroll_length (one env) steps per
# behaviour update, PPO lr (annealed), PROPS lr, λ = props_kl_coef, δ = props_target_kl,
# and the paper's budget. Everything else is the same for every task (module doc). Ant
# follows the released command (ε_PROPS 0.3); the run in the paper's figures used 0.05.
_PROPS = {  # task: (n, m, lr, props lr, λ, δ, props minibatches, total steps)
    "hopper": (2048, 256, 1e-3, 1e-3, 0.3, 0.05, 16, 1_000_000),
    "walker2d": (2048, 256, 1e-3, 1e-3, 0.3, 0.1, 32, 2_000_000),
    "halfcheetah": (1024, 512, 1e-4, 1e-3, 0.3, 0.05, 16, 2_000_000),
    "swimmer": (2048, 1024, 1e-3, 1e-5, 0.1, 0.03, 16, 1_000_000),
    "ant": (2048, 256, 1e-4, 1e-3, 0.1, 0.03, 16, 4_000_000),
    "humanoid": (8192, 256, 1e-4, 1e-4, 0.1, 0.1, 32, 6_000_000),
}
_PPO = {  # task: ((n, lr) with b = 2, (n, lr) on-policy with b = 1)
    "hopper": ((1024, 1e-4), (2048, 1e-3)),
    "walker2d": ((4096, 1e-3), (4096, 1e-3)),
    "halfcheetah": ((4096, 1e-3), (1024, 1e-4)),
    "swimmer": ((2048, 1e-3), (4096, 1e-3)),
    "ant": ((1024, 1e-4), (1024, 1e-4)),
    "humanoid": ((8192, 1e-4), (8192, 1e-4)),
}
VARIANTS = ("props", "ppo_buffer", "ppo")


def authors_settings(task: str, variant: str) -> dict:
  """The authors' config overrides for `task` (a MuJoCo task name, e.g. 'hopper' or
  'brax/hopper') and `variant` ('props', 'ppo_buffer': PPO with b = 2, 'ppo': on-policy),
  plus 'total_steps', the paper's budget. Raises ValueError for other tasks."""
  name = task.split("/")[-1]
  if name not in _PROPS or variant not in VARIANTS:
    raise ValueError(f"no authors' PROPS settings for {task!r}/{variant!r}; tasks: "
                     f"{', '.join(sorted(_PROPS))}; variants: {', '.join(VARIANTS)}")
  n, m, lr, props_lr, kl_coef, delta, props_mbs, steps = _PROPS[name]
  if variant == "props":
    return dict(num_envs=1, unroll_length=m, segments=n // m, buffer_batches=2, props=True,
                learning_rate=lr, props_learning_rate=props_lr, props_kl_coef=kl_coef,
                props_target_kl=delta, props_minibatches=props_mbs, total_steps=steps)
  (n, lr), b = _PPO[name][variant == "ppo"], 1 if variant == "ppo" else 2
  seg = min(n, 256)
  return dict(num_envs=1, unroll_length=seg, segments=n // seg, buffer_batches=b, props=False,
              learning_rate=lr, total_steps=steps)


@struct.dataclass
class PROPSState:
  """Target params {'policy', 'value'} and Adam state, behaviour policy params and Adam
  state, observation and reward normalisation statistics, the buffer ([b·n / num_envs,
  num_envs] arrays, oldest first, with `valid`), the envs, the PRNG key and the number of
  target updates."""

  params: dict
  opt_state: Any
  behavior: Any
  behavior_opt: Any
  obs_stats: RunningStats
  reward_norm: RewardNormState
  buffer: dict
  env_state: EnvState
  key: jax.Array
  update_step: jax.Array


def behavior_loss(raw_phi: jax.Array, raw_theta: jax.Array, u: jax.Array, mask: jax.Array,
                  clip: float, kl_coef: float, min_std: float) -> tuple[jax.Array, dict]:
  """The PROPS behaviour loss on a minibatch (see module doc).

  Args: raw_phi, raw_theta [B, 2a] network outputs of π_φ and π_θ; u [B, a] pre-tanh
  actions; mask [B] (float, 0 leaves an entry out). Returns (L, {'props_loss',
  'props_kl', 'props_approx_kl'}); the KL is averaged over action dimensions.
  """
  m = mask.astype(jnp.float32)
  mean = lambda x: jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)
  phi, theta = distributions.gaussian(raw_phi, min_std), distributions.gaussian(raw_theta, min_std)
  log_r = phi.log_prob(u) - theta.log_prob(u)
  r = jnp.exp(log_r)
  clipped = jnp.maximum(r, jnp.clip(r, 1.0 - clip, 1.0 + clip))
  kl = jnp.mean(se.gaussian_kl(phi.loc[..., None], phi.scale_diag[..., None],
                               theta.loc[..., None], theta.scale_diag[..., None]), axis=-1)
  loss = mean(clipped) + kl_coef * mean(kl)
  return loss, {"props_loss": loss, "props_kl": mean(kl), "props_approx_kl": mean((r - 1) - log_r)}


def _early_stopped_steps(params, opt_state, stopped, optimizer, step_size, grad_fn, mbs, limit,
                         active):
  """Adam steps (`optimizer` scales by Adam, the step is −step_size · that) over minibatches
  mbs [M, ...] whose `active` [M] is True (the others are skipped); once a step's
  approximate KL (aux['kl'] of grad_fn, at the params before that step) exceeds `limit`
  (<= 0: never), that and every later step is skipped, also in later calls given the
  returned `stopped`. -> (params, opt_state, stopped, aux [M]), aux NaN where skipped."""

  def step(carry, xs):
    p, s, stop = carry
    mb, act = xs

    def do(_):
      grads, aux = grad_fn(p, mb)
      stop_now = (limit > 0) & (aux["kl"] > limit)
      updates, s_new = optimizer.update(grads, s, p)
      p_new = optax.apply_updates(p, jax.tree.map(lambda u: -step_size * u, updates))
      keep = lambda new, old: jax.tree.map(lambda x, y: jnp.where(stop_now, y, x), new, old)
      return (keep(p_new, p), keep(s_new, s), stop_now), aux

    def skip(_):
      shapes = jax.eval_shape(grad_fn, p, mb)[1]
      return (p, s, stop), jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), shapes)

    return jax.lax.cond(stop | ~act, skip, do, None)

  (params, opt_state, stopped), aux = jax.lax.scan(step, (params, opt_state, stopped),
                                                   (mbs, active))
  return params, opt_state, stopped, aux


def adam_directions(max_grad_norm: float) -> optax.GradientTransformation:
  """Global-norm clipping then Adam's scaling (eps 1e-5); the caller applies −lr."""
  return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(eps=1e-5))


def behavior_update(config: PROPSConfig, policy_net, optimizer, theta, opt_state, obs: jax.Array,
                    u: jax.Array, mask: jax.Array, key: jax.Array):
  """One PROPS update from φ = θ: `props_epochs` passes of minibatches of
  `props_minibatch_size` over the masked-in transitions (`props_minibatches` of them once
  the buffer is full) on `behavior_loss`, stopped once its approximate KL exceeds
  `props_target_kl`.

  Args: theta, the target policy's flax params; opt_state, the behaviour state of
  `optimizer` (`adam_directions`; the step is props_learning_rate); obs [N, d] (normalised),
  u [N, a] pre-tanh actions, mask [N] bool. Returns (φ, opt_state, metrics).
  """
  data = {"obs": obs, "u": u, "raw_theta": policy_net.apply(theta, obs)}

  def grad_fn(phi, mb):
    def loss_fn(p):
      loss, aux = behavior_loss(policy_net.apply(p, mb["obs"]), mb["raw_theta"], mb["u"],
                                mb["mask"], config.props_clip, config.props_kl_coef,
                                config.min_std)
      return loss, {**aux, "kl": aux["props_approx_kl"]}
    return jax.grad(loss_fn, has_aux=True)(phi)

  def epoch(carry, k):
    mbs, active = valid_minibatches(k, data, mask, config.props_minibatch_size)
    phi, opt, stopped, aux = _early_stopped_steps(*carry, optimizer, config.props_learning_rate,
                                                  grad_fn, mbs, config.props_target_kl, active)
    return (phi, opt, stopped), aux

  (phi, opt_state, stopped), aux = jax.lax.scan(
      epoch, (theta, opt_state, jnp.zeros((), bool)), jax.random.split(key, config.props_epochs))
  metrics = {k: jnp.nanmean(v) for k, v in aux.items() if k != "kl"}
  metrics["props_stopped"] = stopped.astype(jnp.float32)
  return phi, opt_state, metrics


def make_agent(config: PROPSConfig, env: Env) -> Agent:
  """PROPS as an `Agent` over `env` (auto-resetting); config.total_steps > 0 if anneal_lr."""
  config.validate()
  if config.anneal_lr and config.total_steps <= 0:
    raise ValueError("PROPSConfig.total_steps must be set (> 0) to anneal the learning rate")
  pcfg = ppo.PPOConfig(num_envs=config.num_envs, unroll_length=config.unroll_length,
                       num_minibatches=config.num_minibatches, num_epochs=config.num_epochs,
                       learning_rate=config.learning_rate, discount=config.discount,
                       gae_lambda=config.gae_lambda, clip_eps=config.clip_eps,
                       value_coef=config.value_coef, value_clip=config.value_clip,
                       entropy_coef=config.entropy_coef,
                       max_grad_norm=config.max_grad_norm, reward_scaling=config.reward_scaling,
                       normalize_observations=config.normalize_observations,
                       normalize_advantage=config.normalize_advantage,
                       policy_hidden=config.policy_hidden, value_hidden=config.value_hidden,
                       activation=config.activation, min_std=config.min_std,
                       state_dependent_std=config.state_dependent_std)
  policy_net, value_net = ppo.networks(pcfg, env)
  num_updates = max(-(-config.total_steps // config.batch_size), 1)
  # Adam directions; the learning rates are applied per step (the target's anneals with
  # the target update, as the code's frac = 1 − (update − 1) / num_updates).
  optimizer = behavior_opt = adam_directions(config.max_grad_norm)
  make_policy, log_prob = policies.tanh_gaussian_fns(policy_net, config.min_std)
  rows = config.buffer_size // config.num_envs
  seg = config.unroll_length
  flat = lambda x: x.reshape((config.buffer_size,) + x.shape[2:])
  fit = se.FitConfig(num_epochs=config.sampling_error_epochs,
                     num_minibatches=config.buffer_batches * config.segments)

  def init(key):
    k_pi, k_v, k_env, key = jax.random.split(key, 4)
    dummy = jnp.zeros((1, env.observation_size))
    params = {"policy": policy_net.init(k_pi, dummy), "value": value_net.init(k_v, dummy)}
    shape = (rows, config.num_envs)
    buffer = {"obs": jnp.zeros(shape + (env.observation_size,)),
              "next_obs": jnp.zeros(shape + (env.observation_size,)),
              "u": jnp.zeros(shape + (env.action_size,)), "reward": jnp.zeros(shape),
              "terminated": jnp.zeros(shape, bool), "truncated": jnp.zeros(shape, bool),
              "valid": jnp.zeros(shape, bool)}
    return PROPSState(params=params, opt_state=optimizer.init(params),
                      behavior=params["policy"], behavior_opt=behavior_opt.init(params["policy"]),
                      obs_stats=RunningStats.create(env.observation_size),
                      reward_norm=RewardNormState.create(config.num_envs), buffer=buffer,
                      env_state=batch_reset(env, k_env, config.num_envs), key=key,
                      update_step=jnp.zeros((), jnp.int32))

  def collect(state: PROPSState, key):
    """m steps with π_φ (π_θ if not props) appended to the buffer; statistics updated."""
    acting = state.behavior if config.props else state.params["policy"]

    def act(obs, k):
      raw = policy_net.apply(acting, state.obs_stats.normalize(obs))
      u = distributions.gaussian(raw, config.min_std).sample(seed=k)
      return jnp.tanh(u), {"u": u}

    env_state, tr = rollout(env, state.env_state, act, key, seg)
    reward, rew_norm = tr.reward, state.reward_norm
    if config.normalize_rewards:
      # As the code: the buffer keeps the normalised, clipped reward times the scale it
      # was normalised with; updates divide by the scale of their time (no re-clip).
      rew_norm, normalized, scale = reward_norm.normalize_with_scale(
          rew_norm, tr.reward, tr.terminated | tr.truncated, config.discount, config.reward_clip)
      reward = normalized * scale[:, None]
    new = {"obs": tr.obs, "next_obs": tr.next_obs, "u": tr.extras["u"], "reward": reward,
           "terminated": tr.terminated, "truncated": tr.truncated,
           "valid": jnp.ones(tr.reward.shape, bool)}
    buffer = jax.tree.map(lambda old, x: jnp.concatenate([old[seg:], x]), state.buffer, new)
    obs_stats = (state.obs_stats.update(tr.obs) if config.normalize_observations
                 else state.obs_stats)
    return state.replace(env_state=env_state, buffer=buffer, obs_stats=obs_stats,
                         reward_norm=rew_norm), tr

  def props_step(state: PROPSState, key):
    """φ ← θ, then the PROPS update on the buffer less its m oldest transitions if full."""
    if not config.props:
      return state, {}
    b = state.buffer
    full = b["valid"].all()
    oldest = jnp.arange(rows)[:, None] < seg
    phi, opt, metrics = behavior_update(
        config, policy_net, behavior_opt, state.params["policy"], state.behavior_opt,
        flat(state.obs_stats.normalize(b["obs"])), flat(b["u"]),
        flat(b["valid"] & ~(full & oldest)), key)
    return state.replace(behavior=phi, behavior_opt=opt), metrics

  def target_update(state: PROPSState, key):
    """PPO on every buffered transition, recomputed with the current θ and critic."""
    b, params = state.buffer, state.params
    obs = state.obs_stats.normalize(b["obs"])
    values = value_net.apply(params["value"], obs)
    next_values = value_net.apply(params["value"], state.obs_stats.normalize(b["next_obs"]))
    reward = b["reward"] / state.reward_norm.scale if config.normalize_rewards else b["reward"]
    advantage, target = gae(reward * config.reward_scaling, values, next_values,
                            b["terminated"], b["terminated"] | b["truncated"],
                            config.discount, config.gae_lambda)
    old = distributions.gaussian(policy_net.apply(params["policy"], obs), config.min_std)
    batch = jax.tree.map(flat, {"obs": obs, "u": b["u"], "log_prob": old.log_prob(b["u"]),
                                "value": values, "advantage": advantage, "target": target})

    def grad_fn(p, mb):
      k, mb = mb
      grads, aux = jax.grad(ppo.loss, has_aux=True)(p, mb, k, pcfg, policy_net, value_net)
      return grads, {**aux, "kl": aux["approx_kl"]}

    lr = config.learning_rate
    if config.anneal_lr:
      lr = lr * (1.0 - state.update_step.astype(jnp.float32) / num_updates)

    def epoch(carry, k):
      k_perm, k_ent = jax.random.split(k)
      mbs, active = valid_minibatches(k_perm, batch, flat(b["valid"]), config.ppo_minibatch_size)
      mbs = (jax.random.split(k_ent, active.shape[0]), mbs)
      p, opt, stopped, aux = _early_stopped_steps(*carry, optimizer, lr, grad_fn, mbs,
                                                  config.target_kl, active)
      return (p, opt, stopped), aux

    (params, opt_state, stopped), aux = jax.lax.scan(
        epoch, (params, state.opt_state, jnp.zeros((), bool)),
        jax.random.split(key, config.num_epochs))
    metrics = {k: jnp.nanmean(v) for k, v in aux.items() if k != "kl"}
    metrics["learning_rate"] = lr
    metrics["ppo_stopped"] = stopped.astype(jnp.float32)
    return state.replace(params=params, opt_state=opt_state), metrics

  def update(state: PROPSState):
    key, k_seg, k_last, k_se, k_ppo, k_props = jax.random.split(state.key, 6)

    def segment(s, k):
      k_c, k_b = jax.random.split(k)
      s, tr = collect(s, k_c)
      s, m = props_step(s, k_b)
      return s, (tr, m)

    state, (trs, props_metrics) = jax.lax.scan(segment, state,
                                               jax.random.split(k_seg, config.segments - 1))
    state, tr = collect(state, k_last)
    metrics = {}
    if config.sampling_error_epochs:
      b = state.buffer
      metrics["sampling_error"] = se.sampling_error(
          policy_net, state.params["policy"], flat(state.obs_stats.normalize(b["obs"])),
          flat(b["u"]), k_se, flat(b["valid"]), config.min_std, fit)
    state, ppo_metrics = target_update(state, k_ppo)
    state, last_props = props_step(state, k_props)
    all_tr = jax.tree.map(lambda a, x: jnp.concatenate([a.reshape((-1,) + a.shape[2:]), x]),
                          trs, tr)
    metrics.update(ppo_metrics)
    metrics.update({k: jnp.nanmean(jnp.append(props_metrics[k], v))
                    for k, v in last_props.items()})
    metrics.update(episode_stats(all_tr))
    return state.replace(key=key, update_step=state.update_step + 1), metrics

  def policy_params(state: PROPSState):
    return {"policy": state.params["policy"], "obs_stats": state.obs_stats}

  return Agent(init=init, update=update, policy_params=policy_params,
               make_policy=make_policy, log_prob=log_prob,
               steps_per_update=config.batch_size)
