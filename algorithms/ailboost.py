"""AILBoost: adversarial imitation learning via boosting (Chang, Sreenivas, Huang, Brantley &
Sun, ICLR 2024).

The output policy is a mixture (ensemble) of weak learners, grown by functional gradient
boosting on the reverse KL between the ensemble's and the expert's state-action
distributions. One `update` is one boosting round k:

  1. train the current weak learner (SAC, warm-started from the previous one) for
     `learner_steps` env steps on the reward of the current discriminator g;
  2. add it to the ensemble and collect `num_samples` transitions with it (stochastic),
     into its own slot of the weighted buffer (and into SAC's replay);
  3. reweight: with step size η, the ensemble becomes (1 − η)·old + η·new, so after K
     learners learner 0 has weight (1 − η)^(K−1) and learner j ≥ 1 has η (1 − η)^(K−1−j)
     (`boosting_weights`); a learner's samples share its weight;
  4. train the discriminator for `disc_steps` steps on weighted-buffer samples (a learner
     drawn with its weight, then a uniform sample of its slot) against expert samples:

       L(g) = mean_E[exp(−g(x_E))] + mean_π[g(x_π)] + λ_GP · mean[(‖∇_x̂ g(x̂)‖ − 1)²]

     whose minimiser is g* = log(d_E / d_π), the variational form of the reverse KL
     (the code's `rkl` divergence), g bounded by a final tanh, gradient penalty on expert /
     policy interpolates as in DAC.

SAC's reward is g(s, a), recomputed with the current discriminator on every minibatch;
its replay is uniform over all the data collected (the code shares one buffer). Round 0
happens in `init`: after `learning_starts` uniform random steps, learner 0 is the
untrained initial actor. The ensemble's policy (`mixture_policy`) draws one member per
episode with probability equal to its weight and acts with that member's mean action;
the runner's periodic evaluation uses the newest learner (`make_policy`); the ensemble's
members and weights are in `policy_params`, for `mixture_policy`.

Defaults are the authors' code for DM Control (`Cornell-RL/ailboost`): η = 0.05, 1000
samples per learner, 100 discriminator steps of 512 + 512 samples, discriminator 64-64
ReLU with tanh output, Adam 1e-4 everywhere, λ_GP = 10, SAC 1024-1024 with batch 1024,
one SAC step per 2 env steps, 5000 random steps. `learner_steps` = 1000 is the code's
policy_iter in agent steps (with its action repeat of 2 that is 2000 simulator steps;
our envs have no action repeat). Differences from the code: the ensemble's weights are
mapped to learners as intended (the code's `np.unique` sorts and merges them), and the
random prefill stays in SAC's replay.

Memory: the ensemble is a fixed array of `max_learners` = 1 + ⌈total_steps / round⌉
actors, all kept as the paper does; with 1024-1024 actors that is ~4 MB per learner per
seed (a 1M-step run: ~500 learners, ~2 GB per seed, in the state and its checkpoints).
Smaller `hidden` or longer `learner_steps` keep long runs affordable.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from algorithms import dac, sac
from algorithms.common import offpolicy, replay
from algorithms.common.agent import Agent
from algorithms.common.networks import MLP
from algorithms.common.rollout import rollout
from envs import Env


@dataclasses.dataclass(frozen=True)
class AILBoostConfig(sac.SACConfig):
  """AILBoost settings (authors' code defaults; see module doc) over SAC's."""

  demos: str = ""
  total_steps: int = 0
  learner_steps: int = 1000
  num_samples: int = 1000
  eta: float = 0.05
  disc_steps: int = 100
  disc_batch_size: int = 512
  disc_hidden: Sequence[int] = (64, 64)
  disc_activation: str = "relu"
  disc_learning_rate: float = 1e-4
  gradient_penalty: float = 10.0
  # SAC as the authors configure it.
  actor_learning_rate: float = 1e-4
  critic_learning_rate: float = 1e-4
  alpha_learning_rate: float = 1e-4
  hidden: Sequence[int] = (1024, 1024)
  batch_size: int = 1024
  utd_ratio: float = 0.5
  num_envs: int = 8
  unroll_length: int = 25

  @property
  def round_steps(self) -> int:
    """Env steps of one boosting round: training the learner, then its samples."""
    return self.learner_steps + self.num_samples

  @property
  def max_learners(self) -> int:
    """Ensemble capacity: learner 0 plus one per round of the run."""
    return 1 + -(-max(self.total_steps, 1) // self.round_steps)

  def validate(self) -> None:
    super().validate()
    if not self.demos:
      raise ValueError("AILBoost needs expert demonstrations: --demos=PATH")
    if not 0 < self.eta < 1:
      raise ValueError(f"eta must be in (0, 1), got {self.eta}")
    seg = self.num_envs * self.unroll_length
    for name in ("learner_steps", "num_samples"):
      if getattr(self, name) <= 0 or getattr(self, name) % seg:
        raise ValueError(f"{name}={getattr(self, name)} must be a positive multiple of "
                         f"num_envs * unroll_length = {seg}")
    if self.normalize_observations:
      raise ValueError("AILBoost compares raw observations: normalize_observations must be False")


def boosting_weights(num_learners: jax.Array, max_learners: int, eta: float) -> jax.Array:
  """Mixture weights [max_learners] of an ensemble of `num_learners` (zeros past it).

  K = 1: [1]; K ≥ 2: learner 0 (1 − η)^(K−1), learner j ≥ 1 η (1 − η)^(K−1−j). Sums to 1.
  """
  j = jnp.arange(max_learners)
  k = num_learners
  w = jnp.where(j == 0, (1 - eta) ** (k - 1), eta * (1 - eta) ** (k - 1 - j))
  return jnp.where(j < k, w, 0.0)


def sample_weighted(key: jax.Array, weights: jax.Array, num_samples: int,
                    batch_size: int) -> tuple[jax.Array, jax.Array]:
  """Indices (learner [B], sample [B]) into the weighted buffer's slots: a learner drawn
  with its weight, then one of its `num_samples` uniformly, so that transition i of
  learner j has probability weights[j] / num_samples."""
  k_l, k_i = jax.random.split(key)
  who = jax.random.categorical(k_l, jnp.log(weights), shape=(batch_size,))
  return who, jax.random.randint(k_i, (batch_size,), 0, num_samples)


def discriminator_loss(disc_params, disc_net, x_expert, x_policy, key, gradient_penalty: float):
  """The reverse-KL discriminator loss on x_expert, x_policy [B, D] -> (L, aux)."""
  g = lambda x: disc_net.apply(disc_params, x)[..., 0]
  g_e, g_p = g(x_expert), g(x_policy)
  gp = dac.grad_penalty(disc_params, disc_net, x_expert, x_policy, key)
  div = jnp.mean(jnp.exp(-g_e)) + jnp.mean(g_p)
  return div + gradient_penalty * gp, {"disc_loss": div, "gradient_penalty": gp,
                                       "g_expert": g_e.mean(), "g_policy": g_p.mean()}


class TanhMLP(MLP):
  """An MLP whose output passes through tanh (the discriminator g ∈ (−1, 1))."""

  def __call__(self, x):
    return jnp.tanh(super().__call__(x))


@struct.dataclass
class AILBoostState:
  """The SAC loop's state (its learner holds the discriminator), the ensemble's actors
  [max_learners, ...] and count, the weighted buffer's slots [max_learners, num_samples,
  D], the discriminator's optimiser state, the key."""

  inner: offpolicy.OffPolicyState
  ensemble: Any
  num_learners: jax.Array
  slots: jax.Array
  disc_opt: Any
  key: jax.Array


def mixture_policy(policy_net, params: dict, key: jax.Array):
  """The ensemble as a policy for a batch of episodes: each row of the batch (episode)
  acts throughout with one member drawn with its weight from `key` -> policy(obs [E, d],
  step key) -> action [E, a] (members' mean actions)."""

  def policy(obs, _):
    members = jax.random.categorical(key, jnp.log(params["weights"]), shape=obs.shape[:1])
    actor = jax.tree.map(lambda x: x[members], params["ensemble"])
    raw = jax.vmap(lambda p, o: policy_net.apply(p, o))(actor, obs)
    return jnp.tanh(jnp.split(raw, 2, axis=-1)[0])

  return policy


def make_agent(config: AILBoostConfig, env: Env) -> Agent:
  """AILBoost as an `Agent`: one `update` per boosting round (config.total_steps > 0)."""
  config.validate()
  if config.total_steps <= 0:
    raise ValueError("AILBoostConfig.total_steps must be set (> 0): it sizes the ensemble")
  expert = dac.expert_transitions(config.demos, 1)
  width = env.observation_size + 1 + env.action_size
  if expert["x"].shape[-1] != width:
    raise ValueError(f"demos at {config.demos} do not match {env.name}")
  x_expert = jnp.asarray(expert["x"])
  policy_net = sac.networks(config, env.action_size)[0]
  disc_net = TanhMLP(tuple(config.disc_hidden), 1, config.disc_activation)
  disc_opt = optax.adam(config.disc_learning_rate)
  base = sac.make_learner(config, env)
  k_max = config.max_learners
  seg = config.num_envs * config.unroll_length

  def sac_update(lstate, batch, key):
    x = dac.disc_input(batch["obs"], batch["action"], jnp.zeros(batch["obs"].shape[0]))
    r = jax.lax.stop_gradient(disc_net.apply(lstate["disc"], x)[..., 0])
    sac_state, metrics = base.update(lstate["sac"], {**batch, "reward": r}, key)
    return {**lstate, "sac": sac_state}, {**metrics, "disc_reward": r.mean()}

  def learner_init(key):
    k_sac, k_disc = jax.random.split(key)
    return {"sac": base.init(k_sac), "disc": disc_net.init(k_disc, jnp.zeros((1, width)))}

  learner = offpolicy.Learner(
      init=learner_init,
      explore=lambda s, o, k: base.explore(s["sac"], o, k), update=sac_update,
      policy=lambda s: base.policy(s["sac"]), make_policy=base.make_policy,
      log_prob=base.log_prob)
  inner = offpolicy.make_agent(config, env, learner)
  buffer = replay.make_buffer(config.buffer_size, config.batch_size)

  def boost(state: AILBoostState):
    """Add the current actor, collect its samples, reweight, train the discriminator."""
    key, k_roll, k_disc = jax.random.split(state.key, 3)
    s = state.inner
    actor = base.policy(s.learner["sac"])
    k = state.num_learners
    ensemble = jax.tree.map(lambda e, a: e.at[k].set(a), state.ensemble, actor)

    def act(obs, kk):
      return base.explore(s.learner["sac"], obs, kk), {}

    env_state, tr = rollout(env, s.env_state, act, k_roll, config.num_samples // config.num_envs)
    items = replay.items(tr)
    slot = dac.disc_input(items["obs"], items["action"], jnp.zeros(config.num_samples))
    slots = state.slots.at[k].set(slot)
    weights = boosting_weights(k + 1, k_max, config.eta)

    def disc_step(carry, kk):
      params, opt = carry
      k_p, k_e, k_gp = jax.random.split(kk, 3)
      b = config.disc_batch_size
      who, idx = sample_weighted(k_p, weights, config.num_samples, b)
      x_p = slots[who, idx]
      x_e = x_expert[jax.random.randint(k_e, (b,), 0, x_expert.shape[0])]
      grads, aux = jax.grad(discriminator_loss, has_aux=True)(
          params, disc_net, x_e, x_p, k_gp, config.gradient_penalty)
      upd, opt = disc_opt.update(grads, opt)
      return (optax.apply_updates(params, upd), opt), aux

    (disc, d_opt), aux = jax.lax.scan(disc_step, (s.learner["disc"], state.disc_opt),
                                      jax.random.split(k_disc, config.disc_steps))
    inner_state = s.replace(learner={**s.learner, "disc": disc}, env_state=env_state,
                            buffer=buffer.add(s.buffer, items))
    metrics = {**jax.tree.map(lambda x: x[-1], aux), "num_learners": (k + 1).astype(jnp.float32),
               "newest_weight": weights[k]}
    return AILBoostState(inner=inner_state, ensemble=ensemble, num_learners=k + 1, slots=slots,
                         disc_opt=d_opt, key=key), metrics

  def init(key):
    k_inner, key = jax.random.split(key)
    s = inner.init(k_inner)
    actor = base.policy(s.learner["sac"])
    state = AILBoostState(
        inner=s, ensemble=jax.tree.map(lambda a: jnp.zeros((k_max,) + a.shape, a.dtype), actor),
        num_learners=jnp.zeros((), jnp.int32),
        slots=jnp.zeros((k_max, config.num_samples, width)),
        disc_opt=disc_opt.init(s.learner["disc"]), key=key)
    return boost(state)[0]

  def update(state: AILBoostState):
    s, sac_metrics = jax.lax.scan(lambda c, _: inner.update(c), state.inner, None,
                                  length=config.learner_steps // seg)
    state, boost_metrics = boost(state.replace(inner=s))
    return state, {**jax.tree.map(jnp.nanmean, sac_metrics), **boost_metrics}

  def policy_params(state: AILBoostState):
    return {**inner.policy_params(state.inner), "ensemble": state.ensemble,
            "weights": boosting_weights(state.num_learners, k_max, config.eta)}

  return Agent(init=init, update=update, policy_params=policy_params,
               make_policy=base.make_policy, log_prob=base.log_prob,
               steps_per_update=config.round_steps,
               init_steps=inner.init_steps + config.num_samples)
