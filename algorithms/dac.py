"""Discriminator-Actor-Critic (Kostrikov et al., ICLR 2019) with SAC as the policy learner.

A discriminator D(s, a) (a logit) separates expert transitions (label 1) from replay
transitions (label 0); the policy learner is trained on the reward it gives. Per
gradient step of the shared off-policy loop, on a replay minibatch and an expert
minibatch of the same size (the authors' code: one discriminator step per policy step):

  L_D = −mean_E[w_E log σ(D(x_E))] − mean_π[log(1 − σ(D(x_π)))] + λ_GP · mean[(‖∇_x̂ D(x̂)‖ − 1)²]

with x̂ = u x_π + (1 − u) x_E, u ~ U(0, 1) per sample, λ_GP = 10. The policy's reward
is recomputed from the updated discriminator on every minibatch: r = D(s, a) = log σ(D)
− log(1 − σ(D)) (the code's default, `airl`) or r = −log(1 − σ(D)) (`gail`); the
environment's reward is never used for learning (it is still logged).

Absorbing states: inputs carry an indicator x = [s, 0, a]; the absorbing state is
x_abs = [0, 1, 0]. DAC turns an episode that terminates into one ending in an absorbing
state that loops on itself with the learned reward r_abs = r(x_abs), and bootstraps
through it. We use the closed form of that loop instead of storing its transitions:
its value is r_abs / (1 − γ) (one action, no entropy term), so a terminal transition's
target is r + γ r_abs / (1 − γ) instead of r. The discriminator sees x_abs on both sides
in the proportion DAC's buffers hold it: once per terminal transition of the replay
batch, and as expert samples (weight w_E = 1/subsampling, as the code) for expert
trajectories that terminate. Truncated episodes bootstrap normally. DM Control tasks
never terminate, so there the absorbing terms vanish.

Expert data: `make_agent` takes the demonstrations as arrays (`experiments/` loads the
logged-data file that `config.demos` names, from `experiments/collect_demos.py`); every
`expert_subsample`-th transition of each trajectory is kept, from a random offset, as
the code does (20 for 1000-step episodes; 1 keeps all).

Differences from the authors' code: SAC (this repo's) instead of TD3, as the issue
asks; the absorbing loop in closed form (above); the discriminator's 256-256 tanh MLP,
Adam 1e-3 and λ_GP = 10 are the code's.

`AILBoostBaselineConfig` is the weaker DAC that the AILBoost paper compares against (its
authors' `agent/dac.py` with `cfgs/agent/dac.yaml`): a 64-64 ReLU discriminator with a
tanh on its logit (so the reward D ∈ (−1, 1)), Adam 1e-4, the same binary cross-entropy
(JS) loss and gradient penalty on 512 + 512 samples, inputs [s, a] without absorbing
states, all expert transitions (no subsampling), SAC as AILBoost's. Their code also
computes each episode's rewards once, at its end, with the discriminator of that moment,
and stores them shifted by one step (transition t gets D(s_{t+1}, a_{t+1}); the last
keeps the env reward); we recompute them on every minibatch in both configs and do not
copy the shift. Without absorbing states the indicator column is left out of x, so the
gradient penalty is over (s, a) only, as in their code.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms import sac
from algorithms.common import offpolicy
from algorithms.common.networks import MLP
from envs import Env


@dataclasses.dataclass(frozen=True)
class DACConfig(sac.SACConfig):
  """SAC's settings plus the discriminator's (authors' code values)."""

  demos: str = ""
  expert_subsample: int = 20
  disc_hidden: Sequence[int] = (256, 256)
  disc_activation: str = "tanh"
  disc_output_tanh: bool = False
  disc_learning_rate: float = 1e-3
  disc_batch_size: int = 0            # 0: SAC's batch_size (one replay batch per step)
  absorbing: bool = True
  gradient_penalty: float = 10.0
  reward_type: str = "airl"

  def validate(self) -> None:
    super().validate()
    if not self.demos:
      raise ValueError("DAC needs expert demonstrations: --demos=PATH (experiments/collect_demos.py)")
    if self.reward_type not in ("airl", "gail"):
      raise ValueError(f"reward_type must be 'airl' or 'gail', got {self.reward_type!r}")
    if not 0 <= self.disc_batch_size <= self.batch_size:
      raise ValueError(f"disc_batch_size must be in [0, batch_size={self.batch_size}], "
                       f"got {self.disc_batch_size}")
    if self.expert_subsample < 1:
      raise ValueError(f"expert_subsample must be >= 1, got {self.expert_subsample}")
    if self.normalize_observations:
      raise ValueError("DAC compares raw replay and expert observations: "
                       "normalize_observations must be False")


class TanhMLP(MLP):
  """An MLP whose output passes through tanh (a discriminator bounded in (−1, 1))."""

  def __call__(self, x):
    return jnp.tanh(super().__call__(x))


def discriminator(config) -> MLP:
  """The discriminator network of a config with disc_hidden, disc_activation and
  disc_output_tanh: x [..., D] -> [..., 1]."""
  cls = TanhMLP if config.disc_output_tanh else MLP
  return cls(tuple(config.disc_hidden), 1, config.disc_activation)


def disc_input(obs: jax.Array, action: jax.Array, absorbing: jax.Array,
               indicator: bool = True) -> jax.Array:
  """x = [s, absorbing, a] [..., d + 1 + a]; absorbing rows get s = 0, a = 0. Without
  `indicator` (no absorbing states): x = [s, a] [..., d + a]."""
  if not indicator:
    return jnp.concatenate([obs, action], -1)
  absorbing = absorbing.astype(obs.dtype)[..., None]
  return jnp.concatenate([obs * (1 - absorbing), absorbing, action * (1 - absorbing)], -1)


def expert_transitions(demos: Mapping[str, np.ndarray], subsample: int, seed: int = 0,
                       absorbing: bool = True) -> dict:
  """Expert (s, a) of demonstrations, subsampled, plus absorbing samples (without
  `absorbing`: x = [s, a] and no absorbing samples).

  demos: obs [N, T, d], action [N, T, a], terminated [N, T], truncated [N, T] (the
  logged-data layout: steps after a trajectory's first terminated/truncated step are
  padding). Returns numpy {x [M, d + 1 + a], weight [M]}: one x per kept transition
  (weight 1) and one x_abs per terminated trajectory (weight 1/subsample).
  """
  term, trunc = np.asarray(demos["terminated"], bool), np.asarray(demos["truncated"], bool)
  done = (term | trunc).astype(np.int32)
  mask = (np.cumsum(done, axis=-1) - done) == 0
  rng = np.random.default_rng(seed)
  obs, act = np.asarray(demos["obs"]), np.asarray(demos["action"])
  xs, ws = [], []
  for i in range(obs.shape[0]):
    steps = np.flatnonzero(mask[i])
    keep = steps[rng.integers(subsample) % subsample::subsample] if subsample > 1 else steps
    marker = [np.zeros((len(keep), 1))] if absorbing else []
    xs.append(np.concatenate([obs[i, keep], *marker, act[i, keep]], -1))
    ws.append(np.ones(len(keep)))
    if absorbing and term[i].any():
      xs.append(np.concatenate([np.zeros((1, obs.shape[-1])), np.ones((1, 1)),
                                np.zeros((1, act.shape[-1]))], -1))
      ws.append(np.full(1, 1.0 / subsample))
  return {"x": np.concatenate(xs).astype(np.float32), "weight": np.concatenate(ws).astype(np.float32)}


def safe_norm(x: jax.Array) -> jax.Array:
  """‖x‖ over the last axis [...], with gradient 0 at x = 0 (PyTorch's norm has that too)
  where jnp.linalg.norm's is NaN."""
  sq = jnp.sum(x**2, axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def grad_penalty(disc_params, disc_net, x_expert: jax.Array, x_policy: jax.Array,
                 key: jax.Array) -> jax.Array:
  """mean[(‖∇_x̂ D(x̂)‖ − 1)²] at x̂ = u x_policy + (1 − u) x_expert, u ~ U(0, 1) per row [B].

  The norm is `safe_norm`: a ReLU discriminator (the AILBoost authors') has ∇_x̂ D = 0
  exactly wherever every unit of a layer is off, and jnp.linalg.norm's gradient there is
  NaN. That turned every seed of the authors' DAC baseline and of AILBoost NaN on
  dmc/cartpole_swingup (BENCHMARKS.md, issue 11).
  """
  u = jax.random.uniform(key, (x_policy.shape[0], 1))
  x_hat = u * x_policy + (1 - u) * x_expert
  grads = jax.vmap(jax.grad(lambda x: disc_net.apply(disc_params, x)[0]))(x_hat)
  return jnp.mean((safe_norm(grads) - 1.0) ** 2)


def discriminator_loss(disc_params, disc_net, x_expert, w_expert, x_policy, w_absorbing, x_abs,
                       key, gradient_penalty: float):
  """L_D on an expert batch x_expert [B, D] (weights w_expert [B]) and a replay batch
  x_policy [B, D] whose terminal transitions (w_absorbing [B], 0/1) each add one x_abs
  [D] sample on the policy side. Returns (L_D, {'disc_loss', 'gradient_penalty',
  'expert_accuracy', 'policy_accuracy'})."""
  logit = lambda x: disc_net.apply(disc_params, x)[..., 0]
  d_e, d_p, d_abs = logit(x_expert), logit(x_policy), logit(x_abs)
  b = x_policy.shape[0]
  expert_term = -jnp.mean(w_expert * jax.nn.log_sigmoid(d_e))
  policy_term = -(jnp.sum(jax.nn.log_sigmoid(-d_p)) + jnp.sum(w_absorbing) * jax.nn.log_sigmoid(-d_abs)) / b
  gp = grad_penalty(disc_params, disc_net, x_expert, x_policy, key)
  loss = expert_term + policy_term + gradient_penalty * gp
  return loss, {"disc_loss": expert_term + policy_term, "gradient_penalty": gp,
                "expert_accuracy": jnp.mean(d_e > 0), "policy_accuracy": jnp.mean(d_p < 0)}


def reward(logit: jax.Array, reward_type: str) -> jax.Array:
  """The policy's reward from discriminator logits: D (airl) or −log(1 − σ(D)) (gail)."""
  return logit if reward_type == "airl" else -jax.nn.log_sigmoid(-logit)


def make_learner(config: DACConfig, env: Env, expert: dict) -> offpolicy.Learner:
  """SAC on the discriminator's reward, with one discriminator step per SAC step."""
  base = sac.make_learner(config, env)
  disc_net = discriminator(config)
  disc_opt = optax.adam(config.disc_learning_rate)
  x_expert, w_expert = jnp.asarray(expert["x"]), jnp.asarray(expert["weight"])
  ind = config.absorbing
  x_abs = disc_input(jnp.zeros(env.observation_size), jnp.zeros(env.action_size), jnp.ones(()), ind)
  b_d = config.disc_batch_size or config.batch_size

  def init(key):
    k_sac, k_disc = jax.random.split(key)
    disc = disc_net.init(k_disc, jnp.zeros((1, x_abs.shape[-1])))
    return {"sac": base.init(k_sac), "disc": disc, "disc_opt": disc_opt.init(disc)}

  def update(lstate, batch, key):
    k_exp, k_gp, k_sac = jax.random.split(key, 3)
    b = batch["obs"].shape[0]
    idx = jax.random.randint(k_exp, (b_d,), 0, x_expert.shape[0])
    # Without absorbing states a terminal transition is an ordinary one (no x_abs term).
    terminal = (1.0 - batch["discount"]) if ind else jnp.zeros(b)
    x_policy = disc_input(batch["obs"], batch["action"], jnp.zeros(b), ind)
    grads, aux = jax.grad(discriminator_loss, has_aux=True)(
        lstate["disc"], disc_net, x_expert[idx], w_expert[idx], x_policy[:b_d], terminal[:b_d],
        x_abs, k_gp, config.gradient_penalty)
    upd, d_opt = disc_opt.update(grads, lstate["disc_opt"])
    disc = optax.apply_updates(lstate["disc"], upd)
    logits = disc_net.apply(disc, jnp.concatenate([x_policy, x_abs[None]]))[..., 0]
    r = jax.lax.stop_gradient(reward(logits, config.reward_type))
    r_abs = r[-1]
    # A terminal transition enters the absorbing loop, worth r_abs / (1 − γ).
    learned = r[:-1] + terminal * config.discount * r_abs / (1.0 - config.discount)
    sac_state, metrics = base.update(lstate["sac"], {**batch, "reward": learned}, k_sac)
    metrics = {**metrics, **aux, "disc_reward": r[:-1].mean(), "absorbing_reward": r_abs}
    return {"sac": sac_state, "disc": disc, "disc_opt": d_opt}, metrics

  return offpolicy.Learner(init=init, explore=lambda s, o, k: base.explore(s["sac"], o, k),
                           update=update, policy=lambda s: base.policy(s["sac"]),
                           make_policy=base.make_policy, log_prob=base.log_prob)


def make_agent(config: DACConfig, env: Env, demos: Mapping[str, np.ndarray]):
  """DAC as an `Agent` over `env`, imitating `demos` (arrays, see `expert_transitions`)."""
  config.validate()
  expert = expert_transitions(demos, config.expert_subsample, absorbing=config.absorbing)
  marker = int(config.absorbing)
  if expert["x"].shape[-1] != env.observation_size + marker + env.action_size:
    raise ValueError(f"demos at {config.demos} do not match {env.name}: transitions of "
                     f"width {expert['x'].shape[-1] - marker} vs obs + action "
                     f"{env.observation_size + env.action_size}")
  return offpolicy.make_agent(config, env, make_learner(config, env, expert))


@dataclasses.dataclass(frozen=True)
class AILBoostBaselineConfig(sac.AILBoostSACConfig, DACConfig):
  """The AILBoost paper's DAC baseline (its authors' `cfgs/agent/dac.yaml`, see module
  doc): small tanh-bounded discriminator, Adam 1e-4, no expert subsampling, and SAC as
  AILBoost's code configures it (`sac.AILBoostSACConfig`)."""

  expert_subsample: int = 1
  disc_hidden: Sequence[int] = (64, 64)
  disc_activation: str = "relu"
  disc_output_tanh: bool = True
  disc_learning_rate: float = 1e-4
  disc_batch_size: int = 512
  absorbing: bool = False
